import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxLimits } from '../compute-driver.js';
import { cpuBandwidth } from './oci-spec.js';

const MIB = 1024 * 1024;

/**
 * The limits a sandbox made ahead was created with (its config.json: the runtime wrote them into its
 * cgroup), so that a take writes only what differs. Memory in MiB, pids a count, `cpus` its cpuset
 * as a kernel CPU list (e.g. "1"), absent when the runtime was not given one.
 */
export interface MadeLimits {
  memoryMib: number;
  pids: number;
  cpus?: string;
}

/** Where limitWrites() writes (the cgroup file system's mount) and what is there already. */
export interface LimitWritesOptions {
  /** The cgroup file system's mount point (default /sys/fs/cgroup). */
  root?: string;
  /** What the sandbox was created with: equal memory and pids limits are not written again. */
  made?: MadeLimits;
}

/**
 * The cgroup files that give a pre-created sandbox its offer's limits, in the order to write them.
 *
 * CPU: the quota per period of cpuBandwidth (oci-spec.ts), and a burst (the kernel's cfs burst, at
 * most the quota, written after it): a sandbox idle for a while may use up to one more period's
 * quota at once. Its average stays within its vCPUs; without
 * it, the exec agent's fork and exec (exec-agent.ts, about 1.5 ms of CPU, charged to the sandbox)
 * throttled a 0.01-vCPU sandbox (1 ms per 100 ms) until the next period on every command.
 * Sandboxes are created ahead with placeholder limits, or with the memory, pids and cpuset of the
 * last lease of their kind when there was one (crun-driver.ts, `MadeLimits`); the real ones are
 * written straight into the cgroup before the sandbox starts, which costs no process spawn, and those
 * it was created with are not written again: each write is a few µs alone, but under a burst the
 * start's writes took ~0.7 ms of the node's thread, waiting on the kernel's cgroup locks that
 * concurrent runtime creates hold (bench/PROFILES.md, session 13). CPU is always written: a sandbox
 * is made under a whole CPU so that a tiny offer's quota never slows its making.
 */
export function limitWrites(
  mode: 'v1' | 'hybrid' | 'v2',
  cgroupPath: string,
  limits: SandboxLimits,
  swapAccounting: boolean,
  options: LimitWritesOptions = {},
): [file: string, value: string][] {
  const root = options.root ?? '/sys/fs/cgroup';
  const memory = String(limits.memoryMib * MIB);
  const memoryMade = options.made?.memoryMib === limits.memoryMib;
  const pidsMade = options.made?.pids === limits.pids;
  const { quota, period } = cpuBandwidth(limits.vcpu);
  const writes: [string, string][] = [];
  if (mode === 'v2') {
    const dir = join(root, cgroupPath);
    if (!memoryMade) writes.push([join(dir, 'memory.max'), memory], [join(dir, 'memory.swap.max'), '0']);
    writes.push([join(dir, 'cpu.max'), `${quota} ${period}`], [join(dir, 'cpu.max.burst'), String(quota)]);
    if (!pidsMade) writes.push([join(dir, 'pids.max'), String(limits.pids)]);
    return writes;
  }
  const v1 = (controller: string, file: string) => join(root, controller, cgroupPath, file);
  if (!memoryMade) {
    // memory+swap must never be below memory: lift it first, then set both.
    if (swapAccounting) writes.push([v1('memory', 'memory.memsw.limit_in_bytes'), '-1']);
    writes.push([v1('memory', 'memory.limit_in_bytes'), memory]);
    if (swapAccounting) writes.push([v1('memory', 'memory.memsw.limit_in_bytes'), memory]);
  }
  writes.push([v1('cpu', 'cpu.cfs_period_us'), String(period)]);
  writes.push([v1('cpu', 'cpu.cfs_quota_us'), String(quota)]);
  writes.push([v1('cpu', 'cpu.cfs_burst_us'), String(quota)]);
  if (!pidsMade) writes.push([v1('pids', 'pids.max'), String(limits.pids)]);
  return writes;
}

/**
 * The cgroup.procs file listing a sandbox's processes (host pids): the v2 tree's, or on v1 the pids
 * hierarchy's. Nothing inside a sandbox can move itself out (no cgroupfs is mounted there and mounting is
 * denied), so this is the one list of what belongs to it.
 */
export function procsFile(mode: 'v1' | 'hybrid' | 'v2', cgroupPath: string, root = '/sys/fs/cgroup'): string {
  return mode === 'v2'
    ? join(root, cgroupPath, 'cgroup.procs')
    : join(root, 'pids', cgroupPath, 'cgroup.procs');
}

export function applyLimits(writes: readonly [string, string][]): void {
  for (const [file, value] of writes) {
    try {
      writeFileSync(file, value);
    } catch (e) {
      // Kernels without swap accounting have no swap files; there is no swap to cap then. A v2 tree
      // without the cpuset controller has no cpuset.cpus: the quota still bounds CPU time. Kernels
      // before 5.14 have no CPU burst.
      const optional =
        file.endsWith('memory.swap.max') ||
        file.endsWith('cpu.cfs_burst_us') ||
        file.endsWith('cpu.max.burst') ||
        file.endsWith('memory.memsw.limit_in_bytes') ||
        file.endsWith('cpuset.cpus');
      if (!(optional && (e as NodeJS.ErrnoException).code === 'ENOENT')) throw e;
    }
  }
}
