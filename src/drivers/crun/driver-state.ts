import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { AlacarteError } from '../../core/errors.js';
import { DEFAULT_BANDWIDTH_MBIT } from '../../core/offers.js';
import type { HostResources, OvercommitSettings } from '../capacity.js';
import { SANDBOX_ID_PATTERN, type SandboxLimits, type SandboxRef } from '../compute-driver.js';
import { ContainerRuntime } from './container-runtime.js';
import { CpuPicker, ParentCpus } from './cpuset.js';
import type { DriverLogger } from './crun-options.js';
import type { EgressNetwork } from './egress.js';
import type { DriverPaths, HostSetup } from './host-setup.js';
import { InitPids } from './init-process.js';
import { LayerPool, type LayerPoolOptions } from './layer-pool.js';
import type { DriverLxcfs } from './lxcfs.js';
import type { InitKind } from './oci-spec.js';
import type { ConnectionBudget, PortProxy } from './port-proxy.js';
import type { CgroupLayout, RuntimeInfo } from './preflight.js';
import { MetaCache } from './sandbox-meta.js';

/** A lease's port relays, while this process serves it. */
export interface Live {
  proxies: PortProxy[];
  /** Relayed connections of the lease: its published ports and connect() together. */
  budget: ConnectionBudget;
}

/**
 * What one CrunDriver knows, shared by the modules that start, list, stop and reach into its
 * sandboxes (lease-start.ts, sandbox-adoption.ts, sandbox-removal.ts, lease-io.ts, exit-watch.ts,
 * made-ahead.ts): the host it was set up on (host-setup.ts), what it remembers of each sandbox, and
 * the lookups from a lease to its container, directory, cgroup and init. Holds no behaviour of its
 * own beyond those lookups.
 */
export class DriverState {
  readonly runtime: RuntimeInfo;
  readonly cgroups: CgroupLayout;
  readonly paths: DriverPaths;
  readonly instance: string;
  readonly idBase: number;
  readonly idCount: number;
  readonly cgroupParent: string;
  readonly host: HostResources;
  readonly overcommit: OvercommitSettings;
  readonly log: DriverLogger;
  /** The lxcfs whose proc files sandboxes bind (lxcfs.ts). */
  readonly lxcfs: DriverLxcfs;
  /** How sftp() runs OpenSSH's sftp-server inside (sftp-server.ts), or why it cannot. */
  readonly sftpServer: { command: string[] } | { missing: string };
  readonly egress: EgressNetwork;
  /** PID 1 of the sandboxes this process makes: the native init or the busybox shell init. */
  readonly init: InitKind;
  readonly rt: ContainerRuntime;
  readonly pool: LayerPool;
  readonly live = new Map<string, Live>();
  readonly starting = new Set<string>();
  /** lease id -> container name, for sandboxes this process knows. */
  readonly names = new Map<string, string>();
  readonly stopping = new Map<string, Promise<void>>();
  /**
   * Sandboxes being halted or removed: an exec that ends now ended with them (lease-io.ts answers
   * `lease_not_running`, not the status its killed command left).
   */
  readonly ending = new Set<string>();
  readonly limitsById = new Map<string, SandboxLimits>();
  /** Hands out sandboxes' cpusets round-robin, at their making or their start (cpuset.ts). */
  readonly cpus = new CpuPicker();
  /** The CPUs a sandbox's cpuset may hold: its parent cgroup's, read at most once a second. */
  readonly parentCpus = new ParentCpus();
  readonly metas: MetaCache;
  readonly inits: InitPids;
  /** Sandboxes whose init's end watch() reports: started by this process or found by list(). */
  readonly watched = new Set<string>();

  /**
   * @param setup what setUpHost() found and made ready.
   * @param made how the pool makes a sandbox ahead and discards one (made-ahead.ts).
   */
  constructor(setup: HostSetup, made: Pick<LayerPoolOptions, 'create' | 'discard'>) {
    ({
      runtime: this.runtime,
      cgroups: this.cgroups,
      paths: this.paths,
      instance: this.instance,
      idBase: this.idBase,
      idCount: this.idCount,
      cgroupParent: this.cgroupParent,
      host: this.host,
      overcommit: this.overcommit,
      log: this.log,
      lxcfs: this.lxcfs,
      sftpServer: this.sftpServer,
      egress: this.egress,
      init: this.init,
    } = setup);
    const { paths, idBase, instance, runtime, log, egress, warmLayers, warmLayersMax, warmConcurrency } =
      setup;
    this.metas = new MetaCache(paths.runtimeDir);
    this.inits = new InitPids(
      (leaseId) => this.dir(leaseId),
      (leaseId) => this.knownCgroupPath(leaseId),
    );
    this.rt = new ContainerRuntime(runtime, paths.stateDir, instance);
    this.pool = new LayerPool({
      runtimeDir: paths.runtimeDir,
      runStateDir: paths.runState,
      imagesDir: paths.imagesDir,
      busybox: paths.busybox,
      idBase,
      size: warmLayers,
      maxSize: warmLayers === 0 ? 0 : warmLayersMax,
      concurrency: warmConcurrency,
      // Refills wait for a moment without starts, so that a burst's own takes do not slow it down.
      busy: () => this.starting.size > 0,
      logger: log,
      resolvConf: egress.resolvConf(),
      create: made.create,
      discard: made.discard,
    });
  }

  /** The lease's entry in the runtime directory: a link to its sandbox's directory. */
  dir(leaseId: string): string {
    return join(this.paths.runtimeDir, leaseId);
  }

  /** The id of a lease whose sandbox's init runs; throws AlacarteError lease_not_running otherwise. */
  requireRunning(sandbox: SandboxRef): string {
    const id = sandbox.leaseId;
    if (!SANDBOX_ID_PATTERN.test(id) || this.initPid(id) === undefined) {
      throw new AlacarteError('lease_not_running', 'no running sandbox for this lease');
    }
    return id;
  }

  /**
   * What the egress network (egress.ts) needs of the lease's sandbox `name`: its directory, init,
   * bandwidth (Mbit/s) and cgroup.procs files. Throws once its init has ended.
   */
  egressTarget(leaseId: string, name: string, limits: SandboxLimits) {
    const initPid = this.initPid(leaseId);
    if (initPid === undefined) throw new Error('the sandbox has ended');
    const cgroup = this.cgroupOf(name);
    const procsFiles =
      this.cgroups.mode === 'v2'
        ? [join('/sys/fs/cgroup', cgroup, 'cgroup.procs')]
        : this.cgroupParents().map((parent) => join(parent, name, 'cgroup.procs'));
    return {
      dir: join(this.paths.runtimeDir, name),
      name,
      initPid,
      bandwidthMbit: limits.bandwidthMbit ?? DEFAULT_BANDWIDTH_MBIT,
      procsFiles,
    };
  }

  /** This instance's cgroup directories: the one on v2, one per v1 hierarchy (unified left out). */
  cgroupParents(): string[] {
    const root = '/sys/fs/cgroup';
    const path = `${this.cgroupParent}/${this.instance}`;
    if (this.cgroups.mode === 'v2') return [join(root, path)];
    try {
      return readdirSync(root)
        .filter((h) => h !== 'unified')
        .map((h) => join(root, h, path));
    } catch {
      return [];
    }
  }

  /** The cgroup path of the lease's sandbox, undefined when there is none. */
  knownCgroupPath(leaseId: string): string | undefined {
    const name = this.containerName(leaseId);
    return name === undefined ? undefined : this.cgroupOf(name);
  }

  /** The cgroup path, below a hierarchy's root, of the sandbox `name`. */
  cgroupOf(name: string): string {
    return `${this.cgroupParent}/${this.instance}/${name}`;
  }

  /** The container behind a lease, from memory or, after a restart, from its meta.json. */
  containerName(leaseId: string): string | undefined {
    const known = this.names.get(leaseId);
    if (known) return known;
    const name = readLink(join(this.paths.runtimeDir, leaseId));
    if (name === undefined || !LayerPool.isPoolName(name)) return undefined;
    this.names.set(leaseId, name);
    return name;
  }

  /** The host pid of a sandbox's init, only while it is alive and really ours (pids get reused). */
  initPid(leaseId: string): number | undefined {
    return this.inits.initPid(leaseId);
  }
}

/** Where the symbolic link `path` leads, undefined when it is none. */
export function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
