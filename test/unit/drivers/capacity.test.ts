import { describe, expect, it } from 'vitest';
import { availableCapacity, defaultOvercommit, howManyFit } from '../../../src/drivers/capacity.js';

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
