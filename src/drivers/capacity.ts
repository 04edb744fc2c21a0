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

/**
 * vCPUs as whole thousandths of a core. Capacity is counted in these integers: in floating point,
 * 0.7 / 0.1 is 6.999… and seven tenths of a core would show room for six.
 */
export function milliVcpu(vcpu: number): number {
  return Math.round(vcpu * 1000);
}

/** A ratio such as 1.5 as an exact fraction of 1000 (overcommit is configured in decimals). */
const permille = (ratio: number) => Math.round(ratio * 1000);

/**
 * Free capacity once `running` sandboxes are accounted; never negative. Integers throughout
 * (milli-vCPUs, MiB), so sums and ratios are exact: doubles hold integers exactly up to 2^53, far
 * beyond any host's. (BigInt did the same at a few allocations per running sandbox, on every paid
 * create: 2.8 µs a call with 100 running, against 0.3.)
 */
export function availableCapacity(
  host: HostResources,
  settings: OvercommitSettings,
  running: readonly SandboxLimits[],
): DriverCapacity {
  let vcpu = Math.floor(host.cpus) * permille(settings.cpuRatio);
  let memoryMib = Math.floor(
    (Math.max(0, Math.floor(host.memoryMib - settings.reservedMemoryMib)) * permille(settings.memoryRatio)) /
      1000,
  );
  let diskMib = Math.floor(settings.diskBudgetMib);
  for (const r of running) {
    vcpu -= milliVcpu(r.vcpu);
    memoryMib -= r.memoryMib;
    diskMib -= r.diskMib;
  }
  return {
    vcpu: Math.max(0, vcpu) / 1000,
    memoryMib: Math.max(0, memoryMib),
    diskMib: Math.max(0, diskMib),
    sandboxes: Math.max(0, settings.maxSandboxes - running.length),
  };
}

/**
 * How many more sandboxes of an offer fit into what is free, the scarcest resource deciding.
 * Counted in milli-vCPUs and whole MiB, so an exact fit is never refused.
 */
export function howManyFit(
  free: DriverCapacity,
  limits: Pick<SandboxLimits, 'vcpu' | 'memoryMib' | 'diskMib' | 'network'>,
): number {
  if (limits.network === 'egress' && free.egress === false) return 0;
  const per = (have: number, need: number) =>
    need > 0 ? Math.floor(Math.max(0, have) / need) : Number.POSITIVE_INFINITY;
  const n = Math.min(
    per(milliVcpu(free.vcpu), milliVcpu(limits.vcpu)),
    per(Math.floor(free.memoryMib), limits.memoryMib),
    per(Math.floor(free.diskMib), limits.diskMib),
    free.sandboxes,
  );
  return Math.max(0, n);
}

/** What is left once sandboxes of these limits (starts under way) are taken out; may go negative. */
export function capacityWithout(
  free: DriverCapacity,
  taken: Iterable<Pick<SandboxLimits, 'vcpu' | 'memoryMib' | 'diskMib'>>,
): DriverCapacity {
  let vcpu = milliVcpu(free.vcpu);
  const left = { ...free };
  for (const t of taken) {
    vcpu -= milliVcpu(t.vcpu);
    left.memoryMib -= t.memoryMib;
    left.diskMib -= t.diskMib;
    left.sandboxes -= 1;
  }
  return { ...left, vcpu: vcpu / 1000 };
}
