import type { OvercommitSettings } from '../capacity.js';

/** The subset of pino's logger the driver uses; silent by default. */
export interface DriverLogger {
  info(message: string): void;
  warn(message: string): void;
}

export const silentLogger: DriverLogger = { info: () => {}, warn: () => {} };

export interface CrunDriverOptions {
  /** Bundles, writable layers and per-sandbox files live here (default: <dataDir>/sandboxes). */
  runtimeDir: string;
  /** Read-only root filesystems by name; `busybox` is built here when missing. */
  imagesDir: string;
  /** crun's --root; default /run/alacarte-<instance>. Must be on a tmpfs that empties at boot. */
  stateDir?: string;
  /**
   * Names this driver's containers (`<instance>-<leaseId>`) and cgroups; default derived from
   * runtimeDir so that two drivers with different directories never see each other's sandboxes.
   */
  instance?: string;
  /** Path of crun or runc; found on PATH when absent. */
  runtimePath?: string;
  /** Static busybox on the host, used for the image and as every sandbox's init. */
  busyboxPath?: string;
  /** Root inside maps to this host uid/gid; the sandbox gets idCount ids from here. */
  idBase?: number;
  idCount?: number;
  /** Parent of the per-sandbox cgroups (absolute, so sandboxes sit outside the node's own cgroup). */
  cgroupParent?: string;
  /** Writable layers prepared ahead per (image, disk size), to keep mounts off start()'s path. */
  warmLayers?: number;
  /**
   * Most sandboxes made ahead per (image, disk size) when demand is high: the pool holds as many as
   * were taken in the last 5 s, between warmLayers and this (default 128; each waiting sandbox
   * costs well under 1 MiB of host memory and no CPU).
   */
  warmLayersMax?: number;
  /**
   * How many sandboxes are made ahead at once, over every (image, disk size) (default 1: each
   * making is several runtime and mount processes, and on a 2-core host a second at once only
   * takes CPU from paid starts and execs). Refills also wait (up to 1 s) for a moment without
   * starts under way.
   */
  warmConcurrency?: number;
  /**
   * Runs host programs (runtime create/delete, mounts) through one long-lived busybox shell rather
   * than spawning each from Node, whose fork holds the event loop (spawner.ts). Default true; false
   * is the old way, kept for comparison in bench/load.bench.mjs.
   */
  spawnerShell?: boolean;
  /**
   * The native exec agent's program (default native/build/exec-agent, built by scripts/setup.sh;
   * false: none, sandboxes run the busybox shell agent, the fallback, which tests also cover).
   */
  nativeAgent?: string | false;
  /**
   * The native init's program (default native/build/sandbox-init, built by scripts/setup.sh
   * beside the agent; false: every sandbox's PID 1 is the busybox shell init, init-script.ts). It
   * runs the native agent built in, so sandboxes get the shell init where nativeAgent is false.
   */
  nativeInit?: string | false;
  overcommit?: Partial<OvercommitSettings>;
  /**
   * Where to start lxcfs when none runs (default /var/lib/lxcfs), or false to show sandboxes the
   * host's /proc files. A running lxcfs is reused wherever it is mounted (lxcfs.ts).
   */
  lxcfsDir?: string | false;
  /**
   * Egress leases (limits.network 'egress'): `dns` is the resolver sandboxes use (IPv4; default the
   * host's, through pasta's forwarder); `uidBase` the first of 65 536 host uids for their networks
   * (default 1 200 000; must not overlap idBase's range).
   */
  egress?: { dns?: string; uidBase?: number };
  logger?: DriverLogger;
}
