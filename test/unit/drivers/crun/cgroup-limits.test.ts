import { describe, expect, it } from 'vitest';
import { limitWrites } from '../../../../src/drivers/crun/cgroup-limits.js';
import { keepsCpus } from '../../../../src/drivers/crun/cpuset.js';

const limits = { vcpu: 1.5, memoryMib: 512, pids: 100, diskMib: 1024 };

describe('cgroup limit writes', () => {
  it('writes memory, cpu quota and burst (at most one quota) and pids into the v1 hierarchies', () => {
    expect(limitWrites('hybrid', '/alacarte/i/w1', limits, false, { root: '/cg' })).toEqual([
      ['/cg/memory/alacarte/i/w1/memory.limit_in_bytes', String(512 * 2 ** 20)],
      ['/cg/cpu/alacarte/i/w1/cpu.cfs_period_us', '100000'],
      ['/cg/cpu/alacarte/i/w1/cpu.cfs_quota_us', '150000'],
      ['/cg/cpu/alacarte/i/w1/cpu.cfs_burst_us', '150000'],
      ['/cg/pids/alacarte/i/w1/pids.max', '100'],
    ]);
  });

  it('lifts memory+swap before setting memory, then caps it to the same value', () => {
    const writes = limitWrites('v1', '/a/w', limits, true, { root: '/cg' }).map(
      ([f, v]) => `${f.split('/').pop()}=${v}`,
    );
    expect(writes.slice(0, 3)).toEqual([
      'memory.memsw.limit_in_bytes=-1',
      `memory.limit_in_bytes=${512 * 2 ** 20}`,
      `memory.memsw.limit_in_bytes=${512 * 2 ** 20}`,
    ]);
  });

  it('uses the unified files on cgroup v2, with no swap', () => {
    expect(limitWrites('v2', '/alacarte/i/w1', limits, false, { root: '/cg' })).toEqual([
      ['/cg/alacarte/i/w1/memory.max', String(512 * 2 ** 20)],
      ['/cg/alacarte/i/w1/memory.swap.max', '0'],
      ['/cg/alacarte/i/w1/cpu.max', '150000 100000'],
      ['/cg/alacarte/i/w1/cpu.max.burst', '150000'],
      ['/cg/alacarte/i/w1/pids.max', '100'],
    ]);
  });

  it('writes a tiny sandbox a longer period, so that its quota is 10 ms', () => {
    const tiny = { ...limits, vcpu: 0.01 };
    expect(limitWrites('v2', '/a/w', tiny, false, { root: '/cg' })).toContainEqual([
      '/cg/a/w/cpu.max',
      '10000 1000000',
    ]);
    expect(
      limitWrites('v1', '/a/w', tiny, false, { root: '/cg' }).map(([f, v]) => `${f.split('/').pop()}=${v}`),
    ).toEqual(
      expect.arrayContaining([
        'cpu.cfs_period_us=1000000',
        'cpu.cfs_quota_us=10000',
        'cpu.cfs_burst_us=10000',
      ]),
    );
  });

  it('leaves out the memory and pids limits a sandbox was created with, never its CPU time', () => {
    const names = (made: { memoryMib: number; pids: number }, mode: 'v1' | 'v2', swap: boolean) =>
      limitWrites(mode, '/a/w', limits, swap, { root: '/cg', made }).map(([f]) => f.split('/').pop());
    expect(names({ memoryMib: 512, pids: 100 }, 'v1', true)).toEqual([
      'cpu.cfs_period_us',
      'cpu.cfs_quota_us',
      'cpu.cfs_burst_us',
    ]);
    expect(names({ memoryMib: 512, pids: 100 }, 'v2', false)).toEqual(['cpu.max', 'cpu.max.burst']);
    // Made for another offer: each limit that differs is written, in the same order as without.
    expect(names({ memoryMib: 256, pids: 100 }, 'v1', true)).toEqual([
      'memory.memsw.limit_in_bytes',
      'memory.limit_in_bytes',
      'memory.memsw.limit_in_bytes',
      'cpu.cfs_period_us',
      'cpu.cfs_quota_us',
      'cpu.cfs_burst_us',
    ]);
    expect(names({ memoryMib: 512, pids: 64 }, 'v2', false)).toEqual([
      'cpu.max',
      'cpu.max.burst',
      'pids.max',
    ]);
  });

  it('keeps a made cpuset only when it has the lease its count of CPUs, all still allowed', () => {
    expect(keepsCpus('1', 0.01, [0, 1])).toBe(true);
    expect(keepsCpus('0,1', 1.5, [0, 1, 2, 3])).toBe(true);
    expect(keepsCpus('1', 1.5, [0, 1])).toBe(false); // 2 CPUs wanted
    expect(keepsCpus('0,1', 1, [0, 1])).toBe(false); // 1 CPU wanted
    expect(keepsCpus('1', 1, [0])).toBe(false); // the parent no longer has CPU 1
    expect(keepsCpus('0,1', 4, [0, 1])).toBe(true); // as many as there are
    expect(keepsCpus(undefined, 1, [0, 1])).toBe(false);
  });
});
