import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CpuPicker,
  cpusetFile,
  ParentCpus,
  parentCpus,
  parseCpuList,
  pickCpus,
} from '../../../../src/drivers/crun/cpuset.js';
import { lxcfsMountPoints } from '../../../../src/drivers/crun/lxcfs.js';
import { ociSpec } from '../../../../src/drivers/crun/oci-spec.js';

const mountinfo = [
  '27 1 0:25 / / rw,relatime - overlay overlay rw,lowerdir=/a',
  '44 27 0:42 / /var/lib/lxcfs rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw,user_id=0,group_id=0,allow_other',
  '45 27 0:43 / /tmp/with\\040space rw - fuse.lxcfs lxcfs rw',
  '46 27 0:44 / /mnt/other rw - fuse.sshfs host:/ rw',
].join('\n');

describe('lxcfs', () => {
  it('finds fuse.lxcfs mounts (and only those) in mountinfo, with escaped names decoded', () => {
    expect(lxcfsMountPoints(mountinfo)).toEqual(['/var/lib/lxcfs', '/tmp/with space']);
    expect(lxcfsMountPoints('')).toEqual([]);
  });

  it('binds its proc files and the online-CPU list into a sandbox, after /proc and /sys, read-only', () => {
    const base = {
      hostname: 'sandbox',
      rootfs: '/r',
      runDir: '/run',
      libDir: '/lib',
      limits: { vcpu: 1, memoryMib: 256, pids: 64, diskMib: 300 },
      idBase: 1_000_000,
      idCount: 65_536,
      cgroupsPath: '/alacarte/x/w1',
      swapAccounting: false,
      arch: 'x64',
    };
    const mounts = ociSpec({ ...base, lxcfsDir: '/var/lib/lxcfs' }).mounts;
    const dest = mounts.map((m) => m.destination);
    for (const f of ['meminfo', 'cpuinfo', 'stat', 'uptime', 'loadavg', 'diskstats', 'swaps']) {
      const m = mounts.find((x) => x.destination === `/proc/${f}`);
      expect(m).toEqual({
        destination: `/proc/${f}`,
        type: 'bind',
        source: `/var/lib/lxcfs/proc/${f}`,
        options: expect.arrayContaining(['bind', 'ro']),
      });
      expect(dest.indexOf(`/proc/${f}`)).toBeGreaterThan(dest.indexOf('/proc'));
    }
    expect(mounts.find((m) => m.destination === '/sys/devices/system/cpu/online')?.source).toBe(
      '/var/lib/lxcfs/sys/devices/system/cpu/online',
    );
    // Without lxcfs, nothing is bound over /proc.
    expect(ociSpec(base).mounts.filter((m) => m.destination.startsWith('/proc/'))).toEqual([]);
  });
});

describe('cpuset', () => {
  it('parses kernel CPU lists', () => {
    expect(parseCpuList('0-3,8,10-11\n')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList('')).toEqual([]);
    expect(parseCpuList('0-99999999').length).toBeLessThanOrEqual(4096);
  });

  it('picks ceil(vcpu) CPUs round-robin, never more than the host has', () => {
    const host = [0, 1, 2, 3];
    expect(pickCpus(1, host, 0)).toBe('0');
    expect(pickCpus(0.25, host, 3)).toBe('3');
    expect(pickCpus(1.5, host, 3)).toBe('0,3');
    expect(pickCpus(2, host, 1)).toBe('1,2');
    expect(pickCpus(16, host, 2)).toBe('0,1,2,3');
  });

  it('writes cpuset.cpus in the cpuset hierarchy on v1, in the sandbox cgroup on v2', () => {
    expect(cpusetFile('hybrid', '/alacarte/i/w1', '/cg')).toBe('/cg/cpuset/alacarte/i/w1/cpuset.cpus');
    expect(cpusetFile('v2', '/alacarte/i/w1', '/cg')).toBe('/cg/alacarte/i/w1/cpuset.cpus');
  });
});

describe('cpuset placement', () => {
  it('reads the parent cgroup CPUs once a second at most; a narrowing is seen after that', () => {
    const root = mkdtempSync(join(tmpdir(), 'alacarte-cg-'));
    try {
      mkdirSync(join(root, 'cpuset', 'alacarte', 'i'), { recursive: true });
      const file = join(root, 'cpuset', 'alacarte', 'i', 'cpuset.effective_cpus');
      writeFileSync(file, '0-3\n');
      let now = 0;
      const parent = new ParentCpus(() => now);
      expect(parent.of('hybrid', '/alacarte/i/w1', root)).toEqual([0, 1, 2, 3]);
      writeFileSync(file, '1\n');
      now = 999;
      expect(parent.of('hybrid', '/alacarte/i/w2', root)).toEqual([0, 1, 2, 3]);
      now = 1000;
      expect(parent.of('hybrid', '/alacarte/i/w3', root)).toEqual([1]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("takes the parent cgroup's CPUs (an operator may narrow them), round-robin", () => {
    const root = mkdtempSync(join(tmpdir(), 'alacarte-cg-'));
    try {
      mkdirSync(join(root, 'cpuset', 'alacarte', 'i', 'w1'), { recursive: true });
      writeFileSync(join(root, 'cpuset', 'alacarte', 'i', 'cpuset.effective_cpus'), '2-3\n');
      const cpus = parentCpus('hybrid', '/alacarte/i/w1', root);
      expect(cpus).toEqual([2, 3]);
      const picker = new CpuPicker();
      expect([
        picker.pick(1, cpus),
        picker.pick(1, cpus),
        picker.pick(2, cpus),
        picker.pick(1, cpus),
      ]).toEqual(['2', '3', '2,3', '2']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
