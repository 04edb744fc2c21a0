import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_OFFERS, diskFitsMemory } from '../../../src/core/offers.js';
import type { SandboxLimits, SandboxRef } from '../../../src/drivers/compute-driver.js';
import { parseCpuList } from '../../../src/drivers/crun/cpuset.js';
import { silentLogger } from '../../../src/drivers/crun/crun-options.js';
import {
  DriverLxcfs,
  lxcfsAnswers,
  lxcfsAnswersSoon,
  lxcfsMountPoints,
} from '../../../src/drivers/crun/lxcfs.js';
import { runProcess } from '../../../src/drivers/crun/run-process.js';
import { newLeaseId, sh, waitFor } from './compute-driver.contract.js';
import { type CrunTarget, crunSkipReason, makeCrunTarget, readCgroup } from './crun-target.js';

/** What `free -m`, /proc/meminfo, `nproc`, /proc/cpuinfo and `df -m /` say inside a sandbox. */
async function seen(t: CrunTarget, sandbox: SandboxRef) {
  const run = async (script: string) => {
    const r = await sh(t.driver, sandbox, script);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    return r.out;
  };
  // As a command, not from busybox's shell: that shell runs its own applets first, and busybox's
  // `free` asks sysinfo(2), which only knows the host (README: what a sandbox shows).
  const freeRun = await t.driver.exec(sandbox, {
    command: ['free', '-m'],
    timeoutMs: 20_000,
    maxOutputBytes: 1 << 20,
  });
  expect(freeRun.stderr.toString()).toBe('');
  expect(freeRun.exitCode).toBe(0);
  const free = freeRun.stdout.toString();
  const meminfo = await run('grep ^MemTotal: /proc/meminfo');
  const df = await run('df -m /');
  return {
    // free -m: "Mem:  total used free ..."
    freeTotalMib: Number(/^Mem:\s+(\d+)/m.exec(free)?.[1]),
    memTotalKib: Number(/MemTotal:\s+(\d+) kB/.exec(meminfo)?.[1]),
    nproc: Number((await run('nproc')).trim()),
    cpuinfoProcessors: Number((await run('grep -c ^processor /proc/cpuinfo')).trim()),
    online: (await run('cat /sys/devices/system/cpu/online')).trim(),
    uptimeSeconds: Number((await run('cat /proc/uptime')).split(' ')[0]),
    // df -m /: "overlay  <1M-blocks> <used> <available> <use%> /"
    dfTotalMib: Number(/\n\S+\s+(\d+)\s/.exec(df)?.[1]),
  };
}

if (crunSkipReason) {
  describe.skip(`crun resources: skipped, ${crunSkipReason}`, () => {
    it('runs only as root with crun and busybox-static', () => {});
  });
} else {
  describe('crun: a sandbox sees its lease own memory, CPUs and disk (lxcfs, cpuset)', () => {
    let t: CrunTarget;
    const started: string[] = [];
    const start = async (limits: SandboxLimits) => {
      const leaseId = newLeaseId();
      started.push(leaseId);
      await t.driver.start({ leaseId, image: 'busybox' }, limits, new Date(Date.now() + 600_000));
      return { leaseId };
    };

    beforeAll(async () => {
      t = await makeCrunTarget();
    });
    afterAll(async () => {
      if (!t) return;
      await Promise.allSettled(started.map((leaseId) => t.driver.stop({ leaseId })));
      await t.dispose();
    });

    it('memory 256 MiB, vcpu 1, disk 300 MiB: free, meminfo, nproc, cpuinfo and df say so', async () => {
      expect(lxcfsMountPoints().length).toBeGreaterThan(0);
      const s = await start({ vcpu: 1, memoryMib: 256, pids: 64, diskMib: 300 });
      const v = await seen(t, s);
      expect(v.freeTotalMib).toBe(256);
      expect(v.memTotalKib).toBe(256 * 1024);
      expect(v.nproc).toBe(1);
      expect(v.cpuinfoProcessors).toBe(1);
      expect(v.online).toMatch(/^\d+$/);
      expect(v.dfTotalMib).toBe(300);
      // Since the sandbox started (moments ago, made ahead by this test's driver), not the host.
      expect(v.uptimeSeconds).toBeLessThan(600);
      // The lease's own file is still there beside the virtualized ones.
      const lease = await sh(t.driver, s, 'cat /run/alacarte/lease.json');
      expect(JSON.parse(lease.out).id).toBe(s.leaseId);
    });

    it('the default small offer: writing past its disk gives "No space left", the sandbox keeps running', async () => {
      const small = DEFAULT_OFFERS.find((o) => o.id === 'small');
      if (!small) throw new Error('no default offer "small"');
      expect(diskFitsMemory(small)).toBe(true);
      const limits = {
        vcpu: small.vcpu,
        memoryMib: small.memoryMib,
        pids: small.pids,
        diskMib: small.diskMib,
      };
      const s = await start(limits);
      // 700 MiB: more than the disk and more than the memory (the disk is a tmpfs in that memory).
      const full = await sh(
        t.driver,
        s,
        'dd if=/dev/zero of=/root/big bs=1M count=700 2>&1; echo "dd exit $?"',
      );
      expect(full.out).toMatch(/No space left on device/);
      expect(full.out).not.toMatch(/dd exit 0\n/);
      expect(full.out).toMatch(/dd exit [1-9]\d*\n/);
      expect(await t.driver.isRunning(s)).toBe(true);
      expect((await sh(t.driver, s, 'du -m /root/big; echo alive')).out).toMatch(
        /^(\d+)\s+\/root\/big\nalive\n$/,
      );
      const v = await seen(t, s);
      expect(v.freeTotalMib).toBe(small.memoryMib);
      expect(v.dfTotalMib).toBe(small.diskMib);
      // The freed disk is writable again.
      expect((await sh(t.driver, s, 'rm /root/big && echo ok > /root/x && cat /root/x')).out).toBe('ok\n');
    });

    it('two sandboxes with different limits each see their own', async () => {
      const small = await start({ vcpu: 0.5, memoryMib: 128, pids: 64, diskMib: 64 });
      const large = await start({ vcpu: 2, memoryMib: 384, pids: 64, diskMib: 200 });
      const [a, b] = await Promise.all([seen(t, small), seen(t, large)]);
      expect(a).toMatchObject({ freeTotalMib: 128, memTotalKib: 128 * 1024, nproc: 1, cpuinfoProcessors: 1 });
      expect(a.dfTotalMib).toBe(64);
      // A 2-vcpu lease sees 2 CPUs on this host if it has 2; never more than the host has.
      const cpus = Math.min(2, (await import('node:os')).availableParallelism());
      expect(b).toMatchObject({
        freeTotalMib: 384,
        memTotalKib: 384 * 1024,
        nproc: cpus,
        cpuinfoProcessors: cpus,
      });
      expect(b.dfTotalMib).toBe(200);
    });

    it('a sandbox made ahead after a lease of its kind is created with its memory, pids and CPUs; the next lease gets its own either way', async () => {
      const pool = (t.driver as unknown as { pool: { settled(): Promise<void> } }).pool;
      const made = (leaseId: string) =>
        JSON.parse(readFileSync(join(t.options.runtimeDir, leaseId, 'config.json'), 'utf8')).linux.resources;
      const cgroup = (leaseId: string) => {
        const path = t.driver.cgroupPath(leaseId);
        const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
        return {
          memoryMib:
            Number(readCgroup(v2 ? '' : 'memory', path, v2 ? 'memory.max' : 'memory.limit_in_bytes')) /
            2 ** 20,
          pids: Number(readCgroup(v2 ? '' : 'pids', path, 'pids.max')),
          cpus: parseCpuList(readCgroup(v2 ? '' : 'cpuset', path, 'cpuset.cpus')).length,
          cpu: v2
            ? readCgroup('', path, 'cpu.max').trim()
            : `${readCgroup('cpu', path, 'cpu.cfs_quota_us').trim()} ${readCgroup('cpu', path, 'cpu.cfs_period_us').trim()}`,
        };
      };
      const host = Math.min(2, (await import('node:os')).availableParallelism());
      const first = { vcpu: 0.5, memoryMib: 96, pids: 40, diskMib: 48 };
      await start(first); // the first of its kind: made with the placeholders
      await pool.settled();
      const alike = await start(first);
      // Its container was created with the first lease's memory, pids and one CPU…
      expect(made(alike.leaseId).memory.limit).toBe(96 * 2 ** 20);
      expect(made(alike.leaseId).pids.limit).toBe(40);
      expect(parseCpuList(made(alike.leaseId).cpu.cpus)).toHaveLength(1);
      // …and the sandbox has exactly its offer's limits, CPU time included.
      expect(cgroup(alike.leaseId)).toEqual({ memoryMib: 96, pids: 40, cpus: 1, cpu: '50000 100000' });
      expect((await seen(t, alike)).freeTotalMib).toBe(96);
      await pool.settled();
      const other = await start({ vcpu: 2, memoryMib: 160, pids: 50, diskMib: 48 });
      // Made for a lease like the first; each limit that differs is written at the start.
      expect(made(other.leaseId).memory.limit).toBe(96 * 2 ** 20);
      expect(cgroup(other.leaseId)).toEqual({ memoryMib: 160, pids: 50, cpus: host, cpu: '200000 100000' });
      const v = await seen(t, other);
      expect(v).toMatchObject({ freeTotalMib: 160, nproc: host });
    });

    it('a 0.01-vCPU sandbox starts and answers its first commands without its quota stopping it', async () => {
      // 10 ms per second, the same average as 1 ms per 100 ms: a start and a first command (about
      // 2 ms of CPU) fit in it, where 1 ms made the first command wait for the next period.
      const tiny = await start({ vcpu: 0.01, memoryMib: 64, pids: 32, diskMib: 16 });
      for (let i = 0; i < 3; i++) {
        const r = await t.driver.exec(tiny, { command: ['true'], timeoutMs: 20_000, maxOutputBytes: 1024 });
        expect(r.exitCode).toBe(0);
      }
      const path = t.driver.cgroupPath(tiny.leaseId);
      const stat = readCgroup('cpu', path, 'cpu.stat');
      expect(Number(/nr_throttled (\d+)/.exec(stat)?.[1])).toBe(0);
      const bandwidth = existsSync('/sys/fs/cgroup/cgroup.controllers')
        ? readCgroup('', path, 'cpu.max').trim()
        : `${readCgroup('cpu', path, 'cpu.cfs_quota_us').trim()} ${readCgroup('cpu', path, 'cpu.cfs_period_us').trim()}`;
      expect(bandwidth).toBe('10000 1000000');
    });

    it('without lxcfs (lxcfsDir: false) a sandbox still starts, and shows the host', async () => {
      const plain = await makeCrunTarget({ lxcfsDir: false });
      const leaseId = newLeaseId();
      try {
        await plain.driver.start(
          { leaseId, image: 'busybox' },
          { vcpu: 1, memoryMib: 96, pids: 64, diskMib: 32 },
          new Date(Date.now() + 600_000),
        );
        const v = await seen(plain, { leaseId });
        expect(v.memTotalKib).toBe(Math.floor(totalmem() / 1024));
        expect(v.nproc).toBe(1); // the cpuset needs no lxcfs
      } finally {
        await plain.driver.stop({ leaseId }).catch(() => {});
        await plain.dispose();
      }
    });

    it('an lxcfs that is alive but stuck counts as not answering: the checks on the start path and a driver starting give up on it', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'alacarte-lxcfs-'));
      const mount = join(dir, 'm');
      mkdirSync(mount);
      const lxcfs = spawn('lxcfs', ['--foreground', '-p', join(dir, 'pid'), mount], { stdio: 'ignore' });
      const exited = new Promise((r) => lxcfs.once('exit', r));
      try {
        expect(await waitFor(() => lxcfsAnswers(mount), 5000)).toBe(true);
        const driverLxcfs = await DriverLxcfs.open(mount, silentLogger);
        expect(await driverLxcfs.answeringDevice()).toBeTypeOf('number');
        // Stopped, not dead: its mount stays, and an open of its files waits for an answer for ever.
        lxcfs.kill('SIGSTOP');
        // A stop takes effect at each thread's next scheduling point: until then one may still answer.
        expect(await waitFor(() => allStopped(lxcfs.pid ?? 0), 5000)).toBe(true);
        expect(await lxcfsAnswersSoon(mount)).toBe(false);
        expect(await driverLxcfs.answeringDevice()).toBeUndefined();
        // A driver starting now (a node's start) with the stuck one configured does not hang on it:
        // it gets another lxcfs that answers (started anew, or the machine's shared one).
        const reopened = await DriverLxcfs.open(mount, silentLogger);
        expect(await reopened.answeringDevice()).toBeTypeOf('number');
      } finally {
        lxcfs.kill('SIGKILL');
        await exited;
        // An lxcfs the reopened driver may have started on the test's mount point.
        for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
          try {
            if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(mount))
              process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone
          }
        }
        await runProcess('umount', ['-l', mount]);
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('an lxcfs that dies: its sandboxes read ENOTCONN from those files, sandboxes started later see their limits', async () => {
      // A private lxcfs of this test (own mount point and pid file), so killing it touches no one
      // else's sandboxes; the machine's shared one (started by the driver above) takes over.
      const dir = mkdtempSync(join(tmpdir(), 'alacarte-lxcfs-'));
      const mount = join(dir, 'm');
      mkdirSync(mount);
      const lxcfs = spawn('lxcfs', ['--foreground', '-p', join(dir, 'pid'), mount], { stdio: 'ignore' });
      const exited = new Promise((r) => lxcfs.once('exit', r));
      let own: CrunTarget | undefined;
      const mine: string[] = [];
      try {
        expect(await waitFor(() => lxcfsAnswers(mount), 5000)).toBe(true);
        own = await makeCrunTarget({ lxcfsDir: mount });
        const startOwn = async (memoryMib: number) => {
          const leaseId = newLeaseId();
          mine.push(leaseId);
          await own?.driver.start(
            { leaseId, image: 'busybox' },
            { vcpu: 1, memoryMib, pids: 64, diskMib: 32 },
            new Date(Date.now() + 600_000),
          );
          return { leaseId };
        };
        const before = await startOwn(160);
        expect((await seen(own, before)).memTotalKib).toBe(160 * 1024);

        lxcfs.kill('SIGKILL');
        await exited;
        const broken = await sh(own.driver, before, 'cat /proc/meminfo');
        expect(broken.code).not.toBe(0);
        expect(broken.err).toMatch(/not connected/i);
        // The sandbox itself lives on: everything else works.
        expect((await sh(own.driver, before, 'echo alive')).out).toBe('alive\n');

        expect(
          lxcfsMountPoints()
            .filter((p) => p !== mount)
            .some(lxcfsAnswers),
        ).toBe(true);
        const after = await startOwn(224);
        const v = await seen(own, after);
        expect(v).toMatchObject({ memTotalKib: 224 * 1024, freeTotalMib: 224, nproc: 1 });
      } finally {
        if (own) {
          await Promise.allSettled(mine.map((leaseId) => own?.driver.stop({ leaseId })));
          await own.dispose();
        }
        lxcfs.kill('SIGKILL');
        await runProcess('umount', ['-l', mount]);
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

/** Every thread of process `pid` is stopped (state T in /proc/<pid>/task/<tid>/stat). */
function allStopped(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`).every((tid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
    });
  } catch {
    return false;
  }
}
