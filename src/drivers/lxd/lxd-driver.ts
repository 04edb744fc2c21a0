import type { Duplex } from 'node:stream';
import { z } from 'zod';
import type {
  AttachSession,
  ComputeDriver,
  DriverCapacity,
  ExecRequest,
  ExecResult,
  SandboxHandle,
  SandboxInfo,
  SandboxLimits,
  SandboxProcess,
  SandboxRef,
  SandboxSpec,
  SpawnRequest,
  TerminalSize,
} from '../compute-driver.js';
import { ensureBusyboxImage } from '../crun/preflight.js';
import { DeadlineMoves } from './deadline-move.js';
import { DriverState } from './driver-state.js';
import { ExitWatch } from './exit-watch.js';
import { LeaseIo } from './lease-io.js';
import { LeaseStart } from './lease-start.js';
import { clusterSchema, LxdCapacity } from './lxd-capacity.js';
import type { LxdDriverOptions } from './lxd-options.js';
import { PortRelays } from './port-relays.js';
import { rootSizeKind } from './root-disk.js';
import { SandboxAdoption } from './sandbox-adoption.js';
import { SandboxRemoval } from './sandbox-removal.js';

export type { LxdDriverOptions } from './lxd-options.js';

const poolSchema = z.object({ driver: z.string().max(64) }).loose();

/** The id base of the node's image store (the crun driver's default), for the built-in image. */
const STORE_ID_BASE = 1_000_000;

/**
 * The ComputeDriver on LXD (issue 12): one unprivileged, ephemeral system container per lease,
 * placed by LXD (on a cluster, by its scheduler: no `target`), with `limits.cpu`,
 * `limits.cpu.allowance`, `limits.memory`, `limits.processes`, a root disk size, no NIC (loopback
 * only: egress offers are reported as not available) and `security.nesting=false`. Its PID 1 is a
 * small init that ends it at its deadline on its own (in-instance.ts), so a dead control plane
 * cannot leave free compute running. Exec, spawn, attach and connect go through LXD's exec API.
 *
 * The root disk size caps a lease's writes on a btrfs, zfs or lvm pool (on btrfs and lvm it covers
 * the image too, so the driver adds the image's footprint: root-disk.ts). LXD's `dir` pool records
 * the size but cannot enforce it (no quotas without project quotas on the host's file system):
 * create() warns when the pool is `dir`.
 */
export class LxdDriver implements ComputeDriver {
  readonly id = 'lxd';
  /** Every replica reaches the same daemon or cluster: its instances, by owner tag. */
  get sharedTarget(): string {
    return `lxd:${this.s.owner}`;
  }
  // One module a job, all over one DriverState (what the driver knows and its lookups): README.md.
  private readonly s: DriverState;
  private readonly io: LeaseIo;
  private readonly relays: PortRelays;
  private readonly removal: SandboxRemoval;
  private readonly adoption: SandboxAdoption;
  private readonly starter: LeaseStart;
  private readonly deadlines: DeadlineMoves;
  private readonly exits: ExitWatch;
  private readonly resources: LxdCapacity;

  private constructor(options: LxdDriverOptions) {
    this.s = new DriverState(options);
    this.io = new LeaseIo(this.s);
    this.relays = new PortRelays(this.s, this.io);
    this.removal = new SandboxRemoval(this.s, this.relays);
    this.adoption = new SandboxAdoption(this.s, this.relays, this.removal);
    this.starter = new LeaseStart(this.s, this.io, this.relays, this.removal);
    this.deadlines = new DeadlineMoves(this.s);
    this.exits = new ExitWatch(this.s, this.relays);
    this.resources = new LxdCapacity(this.s);
  }

  /**
   * Checks that LXD answers and that the storage pool exists; throws with the reason otherwise.
   * Warns (logger) when the pool cannot enforce disk sizes (`dir`): a lease could fill it.
   */
  static async create(options: LxdDriverOptions): Promise<LxdDriver> {
    const driver = new LxdDriver(options);
    // The built-in image, as the crun driver builds it (owners shifted by its id base, which the
    // import into LXD undoes).
    ensureBusyboxImage(options.imagesDir, options.busybox ?? '/bin/busybox', STORE_ID_BASE, driver.s.logger);
    const pool = await options.client.get(
      `/1.0/storage-pools/${encodeURIComponent(driver.s.pool)}`,
      poolSchema,
    );
    driver.s.rootSize = rootSizeKind(pool.driver);
    if (driver.s.rootSize === 'unenforced')
      driver.s.logger.warn(
        `alacarte: LXD storage pool "${driver.s.pool}" is ${pool.driver}, which does not enforce disk sizes: a lease can write past its offer's disk until the pool's file system is full. Use a btrfs, zfs or lvm pool (src/drivers/lxd/README.md).`,
      );
    const clustered = await options.client
      .get('/1.0/cluster', clusterSchema)
      .then((c) => c.enabled)
      .catch(() => false);
    driver.s.delivery = options.delivery ?? (options.client.local && !clustered ? 'bind' : 'push');
    return driver;
  }

  /** The instance name for a lease: LXD names are host names, lease ids are not. */
  instanceName(leaseId: string): string {
    return this.s.instanceName(leaseId);
  }

  async capacity(): Promise<DriverCapacity> {
    return this.resources.capacity();
  }

  async start(spec: SandboxSpec, limits: SandboxLimits, deadline: Date): Promise<SandboxHandle> {
    return this.starter.start(spec, limits, deadline);
  }

  /**
   * The loopback URL this process relays a running sandbox's declared `port` on, serving its ports
   * first when it does not yet (ComputeDriver.relayPort): a lease started through another replica
   * is reachable through this one at once, not only after its next list(). Undefined for a port
   * the sandbox did not declare; `lease_not_running` when its instance is gone.
   */
  async relayPort(sandbox: SandboxRef, port: number): Promise<string | undefined> {
    return this.relays.relayPort(sandbox, port);
  }

  async exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult> {
    return this.io.exec(sandbox, request);
  }

  /**
   * Ends when the command does, as crun's: a job it started (`server &` in an SSH command) keeps
   * running, its output drained inside the instance (in-instance.ts, RELAYED_EXEC_SCRIPT), while
   * everything the command wrote before it exited still reaches the reader, at the reader's pace.
   */
  async spawn(sandbox: SandboxRef, request: SpawnRequest): Promise<SandboxProcess> {
    return this.io.spawn(sandbox, request);
  }

  async sftp(sandbox: SandboxRef): Promise<SandboxProcess> {
    return this.io.sftp(sandbox);
  }

  async connect(sandbox: SandboxRef, port: number): Promise<Duplex> {
    return this.io.connect(sandbox, port);
  }

  async attach(sandbox: SandboxRef, size: TerminalSize, command?: string[]): Promise<AttachSession> {
    return this.io.attach(sandbox, size, command);
  }

  async setDeadline(sandbox: SandboxRef, deadline: Date): Promise<void> {
    return this.deadlines.setDeadline(sandbox, deadline);
  }

  async isRunning(sandbox: SandboxRef): Promise<boolean> {
    return this.s.isRunning(sandbox);
  }

  /**
   * The host pid of an instance's init (LXD's instance state), or undefined when it does not run
   * here; for checks from the host (the isolation tests), meaningful on the local daemon only.
   */
  async initPid(leaseId: string): Promise<number | undefined> {
    if (!(await this.s.isRunning({ leaseId }))) return undefined;
    const state = await this.s.options.client
      .get(
        `/1.0/instances/${this.s.instanceName(leaseId)}/state`,
        z.object({ pid: z.number().int() }).loose(),
      )
      .catch(() => undefined);
    return state && state.pid > 0 ? state.pid : undefined;
  }

  /** The instance's cgroup below each controller's root (LXC's naming), for checks from the host. */
  cgroupPath(leaseId: string): string {
    return `lxc.payload.${this.s.instanceName(leaseId)}`;
  }

  watch(onExit: (leaseId: string) => void): () => void {
    return this.exits.watch(onExit);
  }

  async stop(sandbox: SandboxRef): Promise<void> {
    return this.removal.stop(sandbox);
  }

  async list(): Promise<SandboxInfo[]> {
    return this.adoption.list();
  }

  async close(): Promise<void> {
    this.relays.unpublishAll();
    this.exits.close();
  }
}
