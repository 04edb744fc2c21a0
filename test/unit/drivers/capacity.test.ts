import { describe, expect, it } from 'vitest';
import {
  availableCapacity,
  capacityWithout,
  defaultOvercommit,
  howManyFit,
} from '../../../src/drivers/capacity.js';

const host = { cpus: 2, memoryMib: 24_000 };
const small = { vcpu: 1, memoryMib: 512, pids: 256, diskMib: 1024 };

describe('capacity arithmetic', () => {
  it('sells cores times the cpu ratio and memory minus the reserve', () => {
    const settings = {
      ...defaultOvercommit(host),
      reservedMemoryMib: 1000,
      cpuRatio: 4,
      diskBudgetMib: 10_000,
    };
    expect(availableCapacity(host, settings, [])).toEqual({
      vcpu: 8,
      memoryMib: 23_000,
      diskMib: 10_000,
      sandboxes: 1000,
    });
  });

  it('subtracts running sandboxes and never goes negative', () => {
    const settings = {
      cpuRatio: 1,
      memoryRatio: 1,
      reservedMemoryMib: 0,
      diskBudgetMib: 2048,
      maxSandboxes: 3,
    };
    const free = availableCapacity(host, settings, [small, small, small]);
    expect(free).toEqual({ vcpu: 0, memoryMib: 24_000 - 1536, diskMib: 0, sandboxes: 0 });
    expect(howManyFit(free, small)).toBe(0);
  });

  it('counts how many of an offer fit, limited by the scarcest resource', () => {
    const free = { vcpu: 8, memoryMib: 2000, diskMib: 100_000, sandboxes: 100 };
    expect(howManyFit(free, small)).toBe(3);
    expect(howManyFit({ ...free, memoryMib: 100_000 }, small)).toBe(8);
    expect(howManyFit({ ...free, memoryMib: 100_000, sandboxes: 2 }, small)).toBe(2);
  });

  it('fits no egress sandbox on a host that cannot start one, and plain ones as before', () => {
    const free = { vcpu: 8, memoryMib: 100_000, diskMib: 100_000, sandboxes: 100 };
    const online = { ...small, network: 'egress' as const };
    expect(howManyFit({ ...free, egress: false }, online)).toBe(0);
    expect(howManyFit({ ...free, egress: false }, small)).toBe(8);
    expect(howManyFit({ ...free, egress: true }, online)).toBe(8);
    expect(howManyFit(free, online)).toBe(8);
  });

  it('treats fractional vCPUs exactly enough that ten tenths fill one core', () => {
    const settings = {
      cpuRatio: 1,
      memoryRatio: 1,
      reservedMemoryMib: 0,
      diskBudgetMib: 1e6,
      maxSandboxes: 100,
    };
    const tenth = { vcpu: 0.1, memoryMib: 16, pids: 8, diskMib: 1 };
    const free = availableCapacity({ cpus: 1, memoryMib: 1e6 }, settings, Array(7).fill(tenth));
    expect(howManyFit(free, tenth)).toBe(3);
  });

  it('applies memory overcommit', () => {
    const settings = {
      cpuRatio: 1,
      memoryRatio: 1.5,
      reservedMemoryMib: 0,
      diskBudgetMib: 0,
      maxSandboxes: 1,
    };
    expect(availableCapacity({ cpus: 1, memoryMib: 1000 }, settings, []).memoryMib).toBe(1500);
  });
});

describe('capacity with fractional vCPUs is exact (milli-vCPUs)', () => {
  const settings = {
    cpuRatio: 1,
    memoryRatio: 1,
    reservedMemoryMib: 0,
    diskBudgetMib: 1e6,
    maxSandboxes: 1000,
  };
  const sized = (vcpu: number) => ({ vcpu, memoryMib: 16, pids: 8, diskMib: 1 });

  // Each of these is one sandbox short in floating point (e.g. 0.7 / 0.1 = 6.999…).
  it.each([
    { free: 0.3, offer: 0.1, fit: 3 },
    { free: 0.7, offer: 0.1, fit: 7 },
    { free: 0.6, offer: 0.2, fit: 3 },
    { free: 2.3, offer: 0.1, fit: 23 },
    { free: 0.9, offer: 0.3, fit: 3 },
  ])('$free free vCPU holds $fit sandboxes of $offer', ({ free, offer, fit }) => {
    expect(howManyFit({ vcpu: free, memoryMib: 1e6, diskMib: 1e6, sandboxes: 1000 }, sized(offer))).toBe(fit);
  });

  it('an overcommit ratio in decimals sells exactly cores × ratio', () => {
    // 2 cores × 0.35 = 0.7 vCPU: seven 0.1-vCPU sandboxes.
    const free = availableCapacity({ cpus: 2, memoryMib: 1e6 }, { ...settings, cpuRatio: 0.35 }, []);
    expect(free.vcpu).toBe(0.7);
    expect(howManyFit(free, sized(0.1))).toBe(7);
    // 3 cores × 1.1 = 3.3 vCPU, with a running 0.1 left: 3.2 = 32 tenths.
    const busy = availableCapacity({ cpus: 3, memoryMib: 1e6 }, { ...settings, cpuRatio: 1.1 }, [sized(0.1)]);
    expect(busy.vcpu).toBe(3.2);
    expect(howManyFit(busy, sized(0.1))).toBe(32);
  });

  it('memory overcommit in decimals is exact too', () => {
    // 100 MiB × 0.29 = 29 MiB (28.999… in floating point).
    const free = availableCapacity({ cpus: 1, memoryMib: 100 }, { ...settings, memoryRatio: 0.29 }, []);
    expect(free.memoryMib).toBe(29);
  });

  it('starts under way are taken out exactly', () => {
    const free = { vcpu: 1, memoryMib: 1e6, diskMib: 1e6, sandboxes: 1000 };
    const left = capacityWithout(free, [sized(0.1), sized(0.2)]);
    expect(left.vcpu).toBe(0.7);
    expect(howManyFit(left, sized(0.1))).toBe(7);
  });
});
