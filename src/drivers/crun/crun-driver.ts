import { realpathSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { AlacarteError } from '../../core/errors.js';
import { deadlineAllowed } from '../../core/lease-request.js';
import { availableCapacity } from '../capacity.js';
import {
  type AttachSession,
  type ComputeDriver,
  type DriverCapacity,
  type ExecRequest,
  type ExecResult,
  SANDBOX_ID_PATTERN,
  type SandboxHandle,
  type SandboxInfo,
  type SandboxLimits,
  type SandboxProcess,
  type SandboxRef,
  type SandboxSpec,
  type SpawnRequest,
  type TerminalSize,
} from '../compute-driver.js';
import type { CrunDriverOptions } from './crun-options.js';
import { DriverState } from './driver-state.js';
import { ExitWatch } from './exit-watch.js';
import { type HostSetup, setUpHost } from './host-setup.js';
import { wakeInit } from './init-process.js';
import { deadlineFile, leaseFile } from './init-script.js';
import type { LayerPool } from './layer-pool.js';
import { LeaseIo } from './lease-io.js';
import { LeaseStarter } from './lease-start.js';
import { MadeAhead } from './made-ahead.js';
import { closeRunState } from './run-state.js';
import { SandboxAdoption } from './sandbox-adoption.js';
import { writeAtomic } from './sandbox-meta.js';
import { SandboxRemoval } from './sandbox-removal.js';

export { validateLimits, validateSpec } from './lease-checks.js';

/**
 * ComputeDriver on crun (or runc): one OCI container per lease, made and started ahead, detached,
 * so that no per-sandbox process of ours stays behind. See src/drivers/crun/README.md.
 *
 * The work is done by one module a job, over one DriverState (driver-state.ts): starts in
 * lease-start.ts, the made-ahead pool's side in made-ahead.ts, commands and connections in
 * lease-io.ts, halting and removal in sandbox-removal.ts, adopting and sweeping what a previous
 * process left in sandbox-adoption.ts, noticing ended sandboxes in exit-watch.ts.
 */
export class CrunDriver implements ComputeDriver {
  readonly id = 'crun';
  private readonly s: DriverState;
  /** The made-ahead pool (layer-pool.ts); tests and benchmarks look at it. */
  private readonly pool: LayerPool;
  /** Names this driver's containers and cgroups (crun-options.ts); benchmarks read it. */
  private readonly instance: string;
  private readonly made: MadeAhead;
  private readonly io: LeaseIo;
  private readonly exits: ExitWatch;
  private readonly removal: SandboxRemoval;
  private readonly starter: LeaseStarter;
  private readonly adoption: SandboxAdoption;

  private constructor(setup: HostSetup) {
    this.s = new DriverState(setup, {
      create: (warm, image, diskMib) => this.made.createContainer(warm, image, diskMib),
      discard: (warm) => this.made.discard(warm),
    });
    this.pool = this.s.pool;
    this.instance = this.s.instance;
    this.made = new MadeAhead(this.s);
    this.io = new LeaseIo(this.s);
    // Through this driver's stop(), as before the split: one removal shared with the node's stops.
    this.exits = new ExitWatch(this.s, (sandbox) => this.stop(sandbox));
    this.removal = new SandboxRemoval(this.s, this.io);
    this.starter = new LeaseStarter(this.s, this.made, this.exits);
    this.adoption = new SandboxAdoption(this.s, (sandbox) => this.stop(sandbox));
  }

  /**
   * Checks the host (runtime, cgroups, busybox, images) and fixes what it may, then returns a driver
   * that already knows the sandboxes a previous process left running. Throws DriverPreflightError
   * with one message saying what to install or change.
   */
  static async create(options: CrunDriverOptions): Promise<CrunDriver> {
    const setup = await setUpHost(options);
    const driver = new CrunDriver(setup);
    await driver.list();
    const { runtime, cgroups, paths } = setup;
    setup.log.info(
      `alacarte: ${runtime.name} driver ready (${runtime.version}, cgroups ${cgroups.mode}, state ${paths.stateDir}, sandboxes in ${paths.runtimeDir})`,
    );
    return driver;
  }

  /**
   * Makes sandboxes for an image and disk size ahead of the first start (for the offers the node
   * sells), so that even the first paid start is fast. Returns at once; the work runs behind.
   */
  prewarm(image: string, diskMib: number): void {
    this.made.ensureImage(image);
    this.pool.want(image, diskMib);
    this.pool.replenish(image, diskMib);
  }

  async capacity(): Promise<DriverCapacity> {
    const s = this.s;
    const running: SandboxLimits[] = [];
    const leases = new Set<string>();
    // No /proc read per sandbox here (GET /v1/offers asks this, with a thousand sandboxes running):
    // a sandbox counts until watch()'s poll has seen its init end, or it was halted or stopped.
    for (const [id, limits] of s.limitsById) {
      if (s.starting.has(id) || s.watched.has(id)) {
        running.push(limits);
        leases.add(id);
      }
    }
    return {
      ...availableCapacity(s.host, s.overcommit, running),
      egress: s.egress.unavailable === undefined,
      leases,
    };
  }

  start(spec: SandboxSpec, limits: SandboxLimits, deadline: Date): Promise<SandboxHandle> {
    return this.starter.start(spec, limits, deadline);
  }

  exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult> {
    return this.io.exec(sandbox, request);
  }

  spawn(sandbox: SandboxRef, request: SpawnRequest): Promise<SandboxProcess> {
    return this.io.spawn(sandbox, request);
  }

  sftp(sandbox: SandboxRef): Promise<SandboxProcess> {
    return this.io.sftp(sandbox);
  }

  connect(sandbox: SandboxRef, port: number): Promise<Duplex> {
    return this.io.connect(sandbox, port);
  }

  attach(sandbox: SandboxRef, size: TerminalSize, command?: string[]): Promise<AttachSession> {
    return this.io.attach(sandbox, size, command);
  }

  async setDeadline(sandbox: SandboxRef, deadline: Date): Promise<void> {
    const s = this.s;
    const id = s.requireRunning(sandbox);
    if (!deadlineAllowed(deadline))
      throw new AlacarteError('invalid_request', 'deadline is not a date up to year 9999');
    const dir = s.dir(id);
    writeDeadline(dir, id, deadline);
    const meta = { ...s.metas.meta(id), deadline: deadline.toISOString() };
    // Where its link leads (the run state), so that the replacement stays there.
    writeAtomic(realpathSync(join(dir, 'meta.json')), JSON.stringify(meta));
    s.metas.set(id, meta);
    // Wake init so that a deadline moved earlier takes effect now, not at its next check.
    await wakeInit(dir);
  }

  /** The host pid of a sandbox's init, only while it is alive and really ours (pids get reused). */
  initPid(leaseId: string): number | undefined {
    return this.s.initPid(leaseId);
  }

  async isRunning(sandbox: SandboxRef): Promise<boolean> {
    return SANDBOX_ID_PATTERN.test(sandbox.leaseId) && this.initPid(sandbox.leaseId) !== undefined;
  }

  /** See ExitWatch.watch (exit-watch.ts): polls the inits of the watched sandboxes. */
  watch(onExit: (leaseId: string) => void): () => void {
    return this.exits.watch(onExit);
  }

  stop(sandbox: SandboxRef): Promise<void> {
    return this.removal.stop(sandbox);
  }

  halt(sandbox: SandboxRef): Promise<void> {
    return this.removal.halt(sandbox);
  }

  list(): Promise<SandboxInfo[]> {
    return this.adoption.list();
  }

  /** close() has run (it may run again: the run state is let go of once). */
  private closed = false;

  async close(): Promise<void> {
    const s = this.s;
    this.exits.close();
    await this.pool.close();
    await this.adoption
      .sweepMadeForNobody()
      .catch((e: unknown) => s.log.warn(`alacarte: removing sandboxes made ahead failed: ${String(e)}`));
    for (const live of s.live.values()) await Promise.all(live.proxies.map((p) => p.close()));
    s.live.clear();
    await s.egress.close();
    // With no sandbox left, leave no empty state or cgroup directories either (best effort: these
    // fail while anything is still in them, which is what should happen). On a hybrid host crun
    // makes each sandbox's cgroup in the unified (v2) hierarchy too, which cgroupParents() leaves
    // out (nothing is written there): without it every node left an empty directory behind.
    const unified =
      s.cgroups.mode === 'hybrid' ? [join('/sys/fs/cgroup/unified', s.cgroupParent, this.instance)] : [];
    for (const dir of [s.paths.stateDir, ...s.cgroupParents(), ...unified]) {
      try {
        rmdirSync(dir);
      } catch {
        // still in use, or gone
      }
    }
    if (!this.closed) await closeRunState(s.paths.runState, s.paths.busybox).catch(() => {});
    this.closed = true;
  }

  /**
   * For tests and benchmarks: sandboxes of (image, disk size) waiting made ahead, and how many
   * starts found none waiting and had one made on their path.
   */
  madeAhead(image: string, diskMib: number): { waiting: number; madeOnDemand: number } {
    return {
      waiting: this.pool.waiting(image, diskMib),
      madeOnDemand: this.pool.madeOnDemand(image, diskMib),
    };
  }

  /** For tests and benchmarks: where a sandbox's processes are accounted. */
  cgroupPath(leaseId: string): string {
    const path = this.s.knownCgroupPath(leaseId);
    if (path === undefined) throw new AlacarteError('lease_not_running', 'no sandbox for this lease');
    return path;
  }
}

function writeDeadline(dir: string, leaseId: string, deadline: Date): void {
  writeAtomic(join(dir, 'run', 'lease.json'), leaseFile(leaseId, deadline));
  writeAtomic(join(dir, 'run', 'deadline'), deadlineFile(deadline));
}
