import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxHandle, SandboxLimits } from '../../../src/drivers/compute-driver.js';
import { sh as contractSh, newLeaseId, TEST_LIMITS, waitFor } from './compute-driver.contract.js';
import { cpuUsageNs, oomKills, readCgroup } from './crun-target.js';
import { ISOLATION_IMAGES, imageTool, type PreparedImage } from './isolation-images.js';
import { type LxdTarget, lxdSkipReason, makeLxdTarget } from './lxd-target.js';

/** True while a host process exists and has not exited (a zombie has). */
function processAlive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * clone(2) with each namespace flag (CLONE_NEWNS ... CLONE_NEWNET, CLONE_NEWCGROUP) and SIGCHLD,
 * through perl's raw syscall (56 on x86_64): prints the errno of each refusal, and that a plain
 * clone still works. A child that was made exits at once.
 */
const CLONE_PROBE =
  'for my $f (0, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000) { my $r = syscall(56, $f | 17, 0, 0, 0, 0); exit 0 if $r == 0; print $r > 0 ? "$f=made\\n" : sprintf("%d=%d\\n", $f, $!+0); waitpid($r, 0) if $r > 0 }';
const CLONE_EXPECTED = [0, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000]
  .map((f) => (f === 0 ? '0=made\n' : `${f}=1\n`))
  .join('');

/** Cases of the crun isolation suite the LXD driver cannot meet, with the reason. */
const DIR_POOL_DISK =
  "LXD's dir storage pool records the root disk size but cannot enforce it (no quotas on this file system); a zfs, btrfs or lvm pool does";

if (lxdSkipReason) {
  describe.skip(`LXD isolation: skipped, ${lxdSkipReason}`, () => {
    it('runs only as root with lxd', () => {});
  });
} else {
  // The same images as the crun isolation suite: busybox, debian (a distribution) and a pulled OCI image.
  describe.each(ISOLATION_IMAGES)('LXD instance isolation on $name (checked from inside)', (image) => {
    let t: LxdTarget;
    let prepared: PreparedImage;
    const started: string[] = [];

    beforeAll(async () => {
      prepared = await image.prepare();
      t = await makeLxdTarget(prepared.imagesDir ? { imagesDir: prepared.imagesDir } : {});
    }, 600_000);
    afterAll(async () => {
      if (!t) return;
      await Promise.allSettled(started.map((leaseId) => t.driver.stop({ leaseId })));
      await t.dispose();
      prepared?.cleanup();
    });

    const tool = (argv: readonly string[]): string[] => imageTool(t.options.imagesDir, image.name)(argv);
    const sh = (sandbox: SandboxHandle, script: string) =>
      contractSh(t.driver, sandbox, script, undefined, tool(['sh', '-c']));

    async function start(limits: Partial<SandboxLimits> = {}, command?: string[]): Promise<SandboxHandle> {
      const leaseId = newLeaseId();
      started.push(leaseId);
      return t.driver.start(
        { leaseId, image: image.name, command: command && tool(command) },
        { ...TEST_LIMITS, ...limits },
        new Date(Date.now() + 300_000),
      );
    }

    it('sees only its own processes', async () => {
      const neighbour = await start({}, ['sleep', '4321']);
      const a = await start();
      const r = await sh(a, 'ps -o pid,args');
      const lines = r.out.trim().split('\n').slice(1);
      expect(lines.length).toBeLessThanOrEqual(4);
      expect(r.out).toMatch(/^\s*1 .*init\.sh/m);
      expect(r.out).not.toMatch(/node|lxd|vitest|4321/);
      expect((await sh(neighbour, 'ps -o args')).out).toMatch(/sleep 4321/);
    });

    it("sees none of the host's files nor another instance's", async () => {
      const marker = `alacarte-host-marker-${randomBytes(4).toString('hex')}`;
      writeFileSync(join(tmpdir(), marker), 'host secret');
      try {
        const a = await start();
        const b = await start();
        await sh(a, 'echo a-secret > /root/secret-a; echo a > /tmp/secret-a2');
        const r = await sh(
          b,
          `ls -a /tmp; find / -xdev -name 'secret-*' -o -name '${marker}'; cat /etc/passwd`,
        );
        expect(r.out).not.toMatch(/secret-a|alacarte-host-marker/);
        expect(r.out).toContain(readFileSync(join(t.options.imagesDir, image.name, 'etc/passwd'), 'utf8'));
        expect((await sh(b, 'ls /work /home/*; ls /proc/1/root/root')).out).not.toMatch(/secret/);
      } finally {
        rmSync(join(tmpdir(), marker), { force: true });
      }
    });

    it("cannot reach a TCP server on the host's loopback and has only its own loopback interface", async () => {
      let connections = 0;
      const server: Server = createServer((s) => {
        connections++;
        s.end('hello from the host\n');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      try {
        const a = await start();
        const r = await sh(a, `nc -w 2 127.0.0.1 ${port} </dev/null; echo "nc=$?"`);
        expect(r.out).not.toMatch(/hello from the host/);
        expect(r.out).toMatch(/nc=[1-9]/);
        expect(connections).toBe(0);
        expect((await sh(a, 'ls /sys/class/net')).out.trim()).toBe('lo');
        expect((await sh(a, 'ip -o link | wc -l; ip route')).out).toBe('1\n');
      } finally {
        server.close();
      }
    });

    it('OOM-kills a memory hog inside its own instance while a neighbour keeps running', async () => {
      const hog = await start({ memoryMib: 32 });
      const neighbour = await start();
      const r = await t.driver.exec(hog, {
        command: tool(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=128M', 'count=1']),
        timeoutMs: 20_000,
        maxOutputBytes: 4096,
      });
      expect(r.exitCode).toBe(137);
      expect(oomKills(t.driver.cgroupPath(hog.leaseId))).toBeGreaterThan(0);
      expect((await sh(neighbour, 'echo fine')).out).toBe('fine\n');
      expect(await waitFor(async () => (await sh(hog, 'echo back')).out === 'back\n', 5000)).toBe(true);
    });

    it('stops a fork bomb at the pids limit while the host and a neighbour stay responsive', async () => {
      const bomb = await start({ pids: 32 });
      const neighbour = await start();
      const path = t.driver.cgroupPath(bomb.leaseId);
      const running = t.driver.exec(bomb, {
        command: tool(['sh', '-c', 'b() { sleep 100 & b & b & wait; }; b']),
        timeoutMs: 3000,
        maxOutputBytes: 4096,
      });
      let peak = 0;
      for (let i = 0; i < 10; i++) {
        await sleep(200);
        peak = Math.max(peak, Number(readCgroup('pids', path, 'pids.current')));
      }
      expect(peak).toBeGreaterThan(8);
      expect(peak).toBeLessThanOrEqual(32);
      expect(Number(/max (\d+)/.exec(readCgroup('pids', path, 'pids.events'))?.[1] ?? '0')).toBeGreaterThan(
        0,
      );
      expect((await sh(neighbour, 'echo calm')).out).toBe('calm\n');
      await running;
      // Init does not fork, so it survives the bomb and still holds the deadline.
      expect(await t.driver.initPid(bomb.leaseId)).toBeGreaterThan(1);
      await t.driver.stop(bomb);
      expect(await t.driver.isRunning(bomb)).toBe(false);
    });

    it('gives a CPU burner no more than its quota', async () => {
      const burner = await start({ vcpu: 0.25 }, ['sh', '-c', 'while :; do :; done']);
      const path = t.driver.cgroupPath(burner.leaseId);
      await sleep(1500);
      const u0 = cpuUsageNs(path);
      const t0 = process.hrtime.bigint();
      await sleep(3000);
      const share = (cpuUsageNs(path) - u0) / Number(process.hrtime.bigint() - t0);
      // Quota 250 ms per 1000 ms period; a period of slack for the window's edges.
      expect(share).toBeLessThanOrEqual(0.25 * 1.1 + 0.1);
      expect(share).toBeGreaterThan(0.03);
    });

    it('keeps writes out of the image and out of the next instance', async () => {
      const a = await start();
      expect((await sh(a, 'echo leak > /etc/leak && rm /bin/ls && echo written')).out).toBe('written\n');
      await t.driver.stop(a);
      const b = await start();
      expect((await sh(b, 'test -e /etc/leak; echo $?; test -e /bin/ls; echo $?')).out).toBe('1\n0\n');
    });

    it.skip(`keeps writes within the disk cap (skipped: ${DIR_POOL_DISK})`, () => {});

    it('is root inside but an unprivileged id outside, without mount or namespace powers', async () => {
      const a = await start();
      const pid = await t.driver.initPid(a.leaseId);
      expect(pid).toBeGreaterThan(1);
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      expect(uid).toBeGreaterThanOrEqual(100_000);
      expect((await sh(a, 'id -u; cat /proc/self/uid_map')).out).toMatch(
        new RegExp(`^0\\n\\s*0\\s+${uid}\\s+\\d+`),
      );
      const tries = await sh(
        a,
        'mkdir -p /mnt; mount -t tmpfs x /mnt 2>&1; echo "mount=$?"; unshare -U true 2>&1; echo "unshare=$?"; echo b > /proc/sysrq-trigger 2>&1; echo "sysrq=$?"; mknod /root/sda b 8 0 2>&1; echo "mknod=$?"',
      );
      expect(tries.out).toMatch(/mount=[1-9]/);
      expect(tries.out).toMatch(/unshare=[1-9]/);
      expect(tries.out).toMatch(/sysrq=[1-9]/);
      expect(tries.out).toMatch(/mknod=[1-9]/);
    });

    it('refuses clone() with any namespace flag, and runs in a uid range no other instance has', async () => {
      const [a, b] = [await start(), await start()];
      const perl = await sh(a, 'command -v perl');
      const clones = perl.code !== 0 ? undefined : await sh(a, `perl -e '${CLONE_PROBE}'`);
      if (clones) expect(clones.out).toBe(CLONE_EXPECTED);
      else expect(image.name).not.toBe('debian');
      const maps = await Promise.all([a, b].map((h) => sh(h, 'cat /proc/self/uid_map')));
      const [first, second] = maps.map((m) => Number(m.out.trim().split(/\s+/)[1]));
      expect(first).toBeGreaterThanOrEqual(100_000);
      expect(second).toBeGreaterThanOrEqual(100_000);
      expect(first).not.toBe(second);
    });

    it('kills every process of an exec that times out, so repeated timeouts never fill the pids limit', async () => {
      const a = await start({ pids: 16 });
      for (let i = 0; i < 5; i++) {
        const r = await t.driver.exec(a, {
          command: tool([
            'sh',
            '-c',
            'sleep 300 & (sleep 300 &); setsid sleep 300 & sh -c "sleep 300" & sleep 300',
          ]),
          timeoutMs: 500,
          maxOutputBytes: 100,
        });
        expect(r.timedOut).toBe(true);
      }
      expect((await sh(a, 'ps -o args | grep -c "^sleep 300" || true')).out.trim()).toBe('0');
    });

    it("ends at its deadline whatever names the lease's environment uses, and the command gets them all", async () => {
      const env = {
        D: '/dev/zero',
        R: '/nonexistent',
        d: '99999999999',
        x: 'x',
        PATH: '/dev/zero',
        IFS: '0123456789',
        ENV: '/dev/zero',
        HOME: '/dev/zero',
      };
      const leaseId = newLeaseId();
      started.push(leaseId);
      // Time for a start on a busy machine (a debian root filesystem is copied per instance).
      const deadline = Date.now() + 15_000;
      const h = await t.driver.start(
        { leaseId, image: image.name, env, command: tool(['/bin/sleep', '1000']) },
        TEST_LIMITS,
        new Date(deadline),
      );
      const pid = (await t.driver.initPid(leaseId)) ?? 0;
      expect(pid).toBeGreaterThan(1);
      const seen = await t.driver.exec(h, {
        command: tool([
          '/run/alacarte/bin/busybox',
          'sh',
          '-c',
          'tr "\\0" "\\n" < /proc/$(pidof sleep)/environ',
        ]),
        timeoutMs: 5000,
        maxOutputBytes: 1 << 16,
      });
      for (const [k, v] of Object.entries(env))
        expect(seen.stdout.toString().split('\n')).toContain(`${k}=${v}`);
      // No list(), no stop(): the instance's own init ends it.
      expect(await waitFor(() => !processAlive(pid), deadline + 5000 - Date.now())).toBe(true);
      expect(await waitFor(async () => !(await t.driver.isRunning(h)), 5000)).toBe(true);
    });
  });
}
