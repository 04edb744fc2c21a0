import type { DriverCapacity, SandboxLimits } from './compute-driver.js';

/** What the host has, as seen at start-up (os.availableParallelism(), os.totalmem()). */
export interface HostResources {
  cpus: number;
  memoryMib: number;
}

/** The operator's knobs: how far to sell more than the host has, and what to keep for itself. */
export interface OvercommitSettings {
  /** vCPUs sold per host core (CPU is time-shared, so selling more than one is usual). */
  cpuRatio: number;
  /** Memory sold per MiB of host memory; 1 = never promise memory that is not there. */
  memoryRatio: number;
  /** Kept for the host, the node process and the kernel, before any sandbox. */
  reservedMemoryMib: number;
  /** Writable layers live in memory (tmpfs), so their sum gets its own budget. */
  diskBudgetMib: number;
  maxSandboxes: number;
}

export function defaultOvercommit(host: HostResources): OvercommitSettings {
  return {
    cpuRatio: 4,
    memoryRatio: 1,
    reservedMemoryMib: Math.min(1024, Math.floor(host.memoryMib / 8)),
    diskBudgetMib: host.memoryMib,
    maxSandboxes: 1000,
  };
}

/** Free capacity once `running` sandboxes are accounted; never negative. */
export function availableCapacity(
  host: HostResources,
  settings: OvercommitSettings,
  running: readonly SandboxLimits[],
): DriverCapacity {
  let vcpu = host.cpus * settings.cpuRatio;
  let memoryMib = Math.max(0, host.memoryMib - settings.reservedMemoryMib) * settings.memoryRatio;
  let diskMib = settings.diskBudgetMib;
  for (const r of running) {
    vcpu -= r.vcpu;
    memoryMib -= r.memoryMib;
    diskMib -= r.diskMib;
  }
  return {
    // Rounded to a thousandth of a core so that 0.1 + 0.2 sums do not refuse an exact fit.
    vcpu: Math.max(0, Math.round(vcpu * 1000) / 1000),
    memoryMib: Math.max(0, Math.floor(memoryMib)),
    diskMib: Math.max(0, Math.floor(diskMib)),
    sandboxes: Math.max(0, settings.maxSandboxes - running.length),
  };
}

/** How many more sandboxes of an offer fit into what is free. */
export function howManyFit(free: DriverCapacity, limits: SandboxLimits): number {
  const per = (have: number, need: number) =>
    need > 0 ? Math.floor(have / need + 1e-9) : Number.POSITIVE_INFINITY;
  const n = Math.min(
    per(free.vcpu, limits.vcpu),
    per(free.memoryMib, limits.memoryMib),
    per(free.diskMib, limits.diskMib),
    free.sandboxes,
  );
  return Math.max(0, n);
}
