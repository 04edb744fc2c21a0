import { describe, expect, it } from 'vitest';
import { limitWrites } from '../../../../src/drivers/crun/cgroup-limits.js';

const limits = { vcpu: 1.5, memoryMib: 512, pids: 100, diskMib: 1024 };

describe('cgroup limit writes', () => {
  it('writes memory, cpu quota and burst (at most one quota) and pids into the v1 hierarchies', () => {
    expect(limitWrites('hybrid', '/alacarte/i/w1', limits, false, '/cg')).toEqual([
      ['/cg/memory/alacarte/i/w1/memory.limit_in_bytes', String(512 * 2 ** 20)],
      ['/cg/cpu/alacarte/i/w1/cpu.cfs_period_us', '100000'],
      ['/cg/cpu/alacarte/i/w1/cpu.cfs_quota_us', '150000'],
      ['/cg/cpu/alacarte/i/w1/cpu.cfs_burst_us', '150000'],
      ['/cg/pids/alacarte/i/w1/pids.max', '100'],
    ]);
  });

  it('lifts memory+swap before setting memory, then caps it to the same value', () => {
    const writes = limitWrites('v1', '/a/w', limits, true, '/cg').map(
      ([f, v]) => `${f.split('/').pop()}=${v}`,
    );
    expect(writes.slice(0, 3)).toEqual([
      'memory.memsw.limit_in_bytes=-1',
      `memory.limit_in_bytes=${512 * 2 ** 20}`,
      `memory.memsw.limit_in_bytes=${512 * 2 ** 20}`,
    ]);
  });

  it('uses the unified files on cgroup v2, with no swap', () => {
    expect(limitWrites('v2', '/alacarte/i/w1', limits, false, '/cg')).toEqual([
      ['/cg/alacarte/i/w1/memory.max', String(512 * 2 ** 20)],
      ['/cg/alacarte/i/w1/memory.swap.max', '0'],
      ['/cg/alacarte/i/w1/cpu.max', '150000 100000'],
      ['/cg/alacarte/i/w1/cpu.max.burst', '150000'],
      ['/cg/alacarte/i/w1/pids.max', '100'],
    ]);
  });

  it('writes a tiny sandbox a longer period, so that its quota is 10 ms', () => {
    const tiny = { ...limits, vcpu: 0.01 };
    expect(limitWrites('v2', '/a/w', tiny, false, '/cg')).toContainEqual([
      '/cg/a/w/cpu.max',
      '10000 1000000',
    ]);
    expect(
      limitWrites('v1', '/a/w', tiny, false, '/cg').map(([f, v]) => `${f.split('/').pop()}=${v}`),
    ).toEqual(
      expect.arrayContaining([
        'cpu.cfs_period_us=1000000',
        'cpu.cfs_quota_us=10000',
        'cpu.cfs_burst_us=10000',
      ]),
    );
  });
});
