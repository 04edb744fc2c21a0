import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it as vitestIt } from 'vitest';
import type { ComputeDriver, SandboxHandle, SandboxLimits } from '../../../src/drivers/compute-driver.js';
import { sh as contractSh, newLeaseId, TEST_LIMITS, waitFor } from './compute-driver.contract.js';
import { cpuUsageNs, oomKills, readCgroup } from './crun-target.js';
import { ISOLATION_IMAGES, type IsolationImage, imageTool, type PreparedImage } from './isolation-images.js';

/** What the isolation suite needs of a driver beyond ComputeDriver: a look from the host. */
export interface IsolationTarget {
  driver: ComputeDriver & {
    /** The host pid of a sandbox's init, or undefined when it does not run. */
    initPid(leaseId: string): number | undefined | Promise<number | undefined>;
    /** The sandbox's cgroup below each controller's root. */
    cgroupPath(leaseId: string): string;
  };
  options: { imagesDir: string; runtimeDir: string };
  dispose(): Promise<void>;
}

/** How a driver's CPU limit is measured: its period sets the slack of a short window. */
export interface CpuWindow {
  warmupMs: number;
  windowMs: number;
  /** Share of a core allowed above the quota for the window's edges. */
  slack: number;
}

/** What a case registered by `extra` may use: the image, the target and the suite's helpers. */
export interface IsolationContext<T extends IsolationTarget> {
  image: IsolationImage;
  /** The target of this image (set once beforeAll has run). */
  readonly t: T;
  /** Lease ids started, stopped after the suite. */
  started: string[];
  /** Starts a sandbox of the image with TEST_LIMITS overridden by `limits`. */
  start(limits?: Partial<SandboxLimits>, command?: string[]): Promise<SandboxHandle>;
  /** argv of a tool of the image (its busybox applet or its own program). */
  tool(argv: readonly string[]): string[];
}

/**
 * clone(2) with each namespace flag (CLONE_NEWNS ... CLONE_NEWNET, CLONE_NEWCGROUP) and SIGCHLD,
 * through perl's raw syscall (56 on x86_64): prints the errno of each refusal, and that a plain
 * clone still works. A child that was made exits at once.
 */
const CLONE_FLAGS = [0, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000];
const CLONE_PROBE = `for my $f (${CLONE_FLAGS.join(', ')}) { my $r = syscall(56, $f | 17, 0, 0, 0, 0); exit 0 if $r == 0; print $r > 0 ? "$f=made\\n" : sprintf("%d=%d\\n", $f, $!+0); waitpid($r, 0) if $r > 0 }`;
const CLONE_EXPECTED = CLONE_FLAGS.map((f) => (f === 0 ? '0=made\n' : `${f}=1\n`)).join('');

/** True while a host process exists and has not exited (a zombie has). */
export function processAlive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * The isolation every driver's sandboxes must show, checked from inside and from the host, on
 * every kind of image: the built-in busybox, debian (a distribution: set-uid files, merged /usr,
 * its own shell and tools) and an OCI image pulled with skopeo and umoci. `known` names the cases
 * a driver cannot meet, each with its reason; `extra` registers a driver's own cases on the same
 * targets.
 */
export function isolationContract<T extends IsolationTarget>(
  name: string,
  makeTarget: (imagesDir: string | undefined) => Promise<T>,
  settings: {
    cpu: CpuWindow;
    /** How long a start may take on a busy machine (the deadline case starts with this much). */
    startMs: number;
    known?: Record<string, string>;
    extra?: (ctx: IsolationContext<T>) => void;
  },
): void {
  const it = (title: string, fn: () => Promise<void>) => {
    const reason = settings.known?.[title];
    if (reason) vitestIt.skip(`${title} (skipped: ${reason})`, fn);
    else vitestIt(title, fn);
  };
  describe.each(ISOLATION_IMAGES)(`${name} sandbox isolation on $name (checked from inside)`, (image) => {
    let target: T | undefined;
    let prepared: PreparedImage;
    const started: string[] = [];

    beforeAll(async () => {
      prepared = await image.prepare();
      target = await makeTarget(prepared.imagesDir);
    }, 600_000);
    afterAll(async () => {
      if (!target) return;
      await Promise.allSettled(started.map((leaseId) => target?.driver.stop({ leaseId })));
      await target.dispose();
      prepared?.cleanup();
    });

    const ctx: IsolationContext<T> = {
      image,
      get t() {
        if (!target) throw new Error('no target: its start failed');
        return target;
      },
      started,
      start: async (limits = {}, command) => {
        const leaseId = newLeaseId();
        started.push(leaseId);
        return ctx.t.driver.start(
          { leaseId, image: image.name, command: command && ctx.tool(command) },
          { ...TEST_LIMITS, ...limits },
          new Date(Date.now() + 300_000),
        );
      },
      tool: (argv) => imageTool(ctx.t.options.imagesDir, image.name)(argv),
    };
    const { start, tool } = ctx;
    const sh = (sandbox: SandboxHandle, script: string) =>
      contractSh(ctx.t.driver, sandbox, script, undefined, tool(['sh', '-c']));

    it('sees only its own processes', async () => {
      const neighbour = await start({}, ['sleep', '4321']);
      const a = await start();
      const r = await sh(a, 'ps -o pid,args');
      const lines = r.out.trim().split('\n').slice(1);
      // init, sh and ps, and what the driver runs an exec under (LXD: a shell and two output relays).
      expect(lines.length).toBeLessThanOrEqual(6);
      expect(r.out).toMatch(/^\s*1 .*(init\.sh|sandbox-init)/m);
      expect(r.out).not.toMatch(/node|crun|lxd|vitest|4321/);
      expect((await sh(neighbour, 'ps -o args')).out).toMatch(/sleep 4321/);
    });

    it("sees none of the host's files nor another sandbox's", async () => {
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
        // Its /etc is the image's, not the host's (which has many more accounts).
        expect(r.out).toContain(
          readFileSync(join(ctx.t.options.imagesDir, image.name, 'etc/passwd'), 'utf8'),
        );
        expect(readFileSync('/etc/passwd', 'utf8').split('\n').length).toBeGreaterThan(2);
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

    it('OOM-kills a memory hog inside its own sandbox while a neighbour keeps running', async () => {
      const hog = await start({ memoryMib: 32 });
      const neighbour = await start();
      // One process that needs 128 MiB at once in a 32 MiB sandbox: the OOM killer takes it (SIGKILL).
      const r = await ctx.t.driver.exec(hog, {
        command: tool(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=128M', 'count=1']),
        timeoutMs: 20_000,
        maxOutputBytes: 4096,
      });
      expect(r.exitCode).toBe(137);
      expect(oomKills(ctx.t.driver.cgroupPath(hog.leaseId))).toBeGreaterThan(0);
      expect((await sh(neighbour, 'echo fine')).out).toBe('fine\n');
      // The hog's sandbox itself lives on: only the greedy process died (its memory is freed a
      // moment after the kill, so give the next command that moment).
      expect(await waitFor(async () => (await sh(hog, 'echo back')).out === 'back\n', 5000)).toBe(true);
    });

    it('stops a fork bomb at the pids limit while the host and a neighbour stay responsive', async () => {
      const bomb = await start({ pids: 32 });
      const neighbour = await start();
      const path = ctx.t.driver.cgroupPath(bomb.leaseId);
      // Every bomb process keeps a child alive, so the count climbs to the limit and stays there.
      const running = ctx.t.driver.exec(bomb, {
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
      // Forks were refused at the limit.
      expect(Number(/max (\d+)/.exec(readCgroup('pids', path, 'pids.events'))?.[1] ?? '0')).toBeGreaterThan(
        0,
      );
      expect(spawnSync('true').status).toBe(0);
      expect((await sh(neighbour, 'echo calm')).out).toBe('calm\n');
      await running;
      // The sandbox's init does not fork, so it survives its tenant's bomb and still holds the deadline.
      expect(await ctx.t.driver.initPid(bomb.leaseId)).toBeGreaterThan(1);
      await ctx.t.driver.stop(bomb);
      expect(await ctx.t.driver.isRunning(bomb)).toBe(false);
      expect(existsSync(join(ctx.t.options.runtimeDir, bomb.leaseId))).toBe(false);
    });

    it('gives a CPU burner no more than its quota', async () => {
      const burner = await start({ vcpu: 0.25 }, ['sh', '-c', 'while :; do :; done']);
      const path = ctx.t.driver.cgroupPath(burner.leaseId);
      await sleep(settings.cpu.warmupMs);
      const u0 = cpuUsageNs(path);
      const t0 = process.hrtime.bigint();
      await sleep(settings.cpu.windowMs);
      const share = (cpuUsageNs(path) - u0) / Number(process.hrtime.bigint() - t0);
      expect(share).toBeLessThanOrEqual(0.25 * 1.1 + settings.cpu.slack);
      expect(share).toBeGreaterThan(0.03);
    });

    it('keeps writes out of the image and out of the next sandbox', async () => {
      const a = await start();
      expect((await sh(a, 'echo leak > /etc/leak && rm /bin/ls && echo written')).out).toBe('written\n');
      await ctx.t.driver.stop(a);
      const tree = join(ctx.t.options.imagesDir, image.name);
      expect(existsSync(join(tree, 'etc/leak'))).toBe(false);
      expect(existsSync(join(tree, 'bin/ls'))).toBe(true);
      const b = await start();
      expect((await sh(b, 'test -e /etc/leak; echo $?; test -e /bin/ls; echo $?')).out).toBe('1\n0\n');
    });

    it('keeps writes within the disk cap', async () => {
      const a = await start({ diskMib: 8 });
      const full = await sh(a, 'dd if=/dev/zero of=/root/big bs=1M count=64 2>&1; du -m /root/big');
      // ENOSPC from a file system of the disk's size (crun's tmpfs), EDQUOT from a quota (btrfs).
      expect(full.out).toMatch(/No space left|Disk quota exceeded/);
      const written = Number(full.out.trim().split('\n').at(-1)?.split(/\s/)[0]);
      expect(written).toBeLessThanOrEqual(8);
      // ...and most of what it paid for is there to write (LXD on btrfs: the image's size is estimated).
      expect(written).toBeGreaterThanOrEqual(6);
      // The lease lives on when its disk is full, and what it frees it can write again.
      expect((await sh(a, 'rm /root/big && echo 1 > /root/small && cat /root/small')).out).toBe('1\n');
    });

    it('is root inside but an unprivileged id outside, without mount or namespace powers', async () => {
      const a = await start();
      const pid = await ctx.t.driver.initPid(a.leaseId);
      expect(pid).toBeGreaterThan(1);
      // init may run as another uid inside (both drivers' do, once it has dropped root a moment
      // after the start): root inside is init's host uid less that, read the two the same moment.
      let uid = 0;
      let initUid = 0;
      let inside = { out: '' };
      for (let i = 0; i < 20; i++) {
        inside = await sh(
          a,
          'id -u; cat /proc/self/uid_map; while read -r l; do case $l in Uid:*) echo "$l";; esac; done < /proc/1/status',
        );
        initUid = Number(/^Uid:\s+(\d+)/m.exec(inside.out)?.[1]);
        uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
        const base = Number(/^0\n\s*0\s+(\d+)/.exec(inside.out)?.[1]);
        if (uid - initUid === base) break;
        await sleep(100);
      }
      expect(uid).toBeGreaterThanOrEqual(100_000);
      expect(inside.out).toMatch(new RegExp(`^0\\n\\s*0\\s+${uid - initUid}\\s+\\d+`));
      const tries = await sh(
        a,
        'mkdir -p /mnt; mount -t tmpfs x /mnt 2>&1; echo "mount=$?"; unshare -U true 2>&1; echo "unshare=$?"; echo b > /proc/sysrq-trigger 2>&1; echo "sysrq=$?"; mknod /root/sda b 8 0 2>&1; echo "mknod=$?"',
      );
      expect(tries.out).toMatch(/mount=[1-9]/);
      expect(tries.out).toMatch(/unshare=[1-9]/);
      expect(tries.out).toMatch(/sysrq=[1-9]/);
      expect(tries.out).toMatch(/mknod=[1-9]/);
    });

    it('refuses clone() with any namespace flag (tried with perl where the image has it)', async () => {
      const a = await start();
      const perl = await sh(a, 'command -v perl');
      // debian has perl (perl-base is essential); the busybox and pulled images have no way to
      // make a raw clone, so there the flags are checked through unshare above only.
      if (image.name === 'debian') expect(perl.code).toBe(0);
      if (perl.code !== 0) return;
      expect((await sh(a, `perl -e '${CLONE_PROBE}'`)).out).toBe(CLONE_EXPECTED);
    });

    it("keeps its init out of root's reach: no /proc/1/mem nor /proc/1/environ, and no signal ends it", async () => {
      const a = await start();
      // Init holds the deadline: writing its memory would keep the sandbox past it.
      const r = await sh(
        a,
        '( exec 4<>/proc/1/mem ) 2>/dev/null && echo mem; cat /proc/1/environ >/dev/null 2>&1 && echo environ; for s in 1 2 3 9 15 19; do kill -$s 1 2>/dev/null; done; sleep 1; echo done',
      );
      expect(r.out).toBe('done\n');
      expect(await ctx.t.driver.isRunning(a)).toBe(true);
    });

    it('runs in a range of host uids no other sandbox has', async () => {
      const [a, b] = [await start(), await start()];
      const maps = await Promise.all([a, b].map((h) => sh(h, 'cat /proc/self/uid_map')));
      const [first, second] = maps.map((m) => Number(m.out.trim().split(/\s+/)[1]));
      expect(first).toBeGreaterThanOrEqual(100_000);
      expect(second).toBeGreaterThanOrEqual(100_000);
      expect(first).not.toBe(second);
    });

    it('kills every process of an exec that times out, so repeated timeouts never fill the pids limit', async () => {
      const a = await start({ pids: 16 });
      // Each run leaves 4 sleeps behind if only its first process is killed: 5 runs would need 20.
      for (let i = 0; i < 5; i++) {
        const r = await ctx.t.driver.exec(a, {
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
      // Names the init scripts use, and ones that change how a shell behaves.
      const env = {
        D: '/dev/zero',
        R: '/nonexistent',
        d: '99999999999',
        r: '3600',
        x: 'x',
        started: '',
        PATH: '/dev/zero',
        IFS: '0123456789',
        ENV: '/dev/zero',
        HOME: '/dev/zero',
      };
      const leaseId = newLeaseId();
      started.push(leaseId);
      const deadline = Date.now() + settings.startMs;
      const h = await ctx.t.driver.start(
        { leaseId, image: image.name, env, command: tool(['/bin/sleep', '1000']) },
        TEST_LIMITS,
        new Date(deadline),
      );
      const pid = (await ctx.t.driver.initPid(leaseId)) ?? 0;
      expect(pid).toBeGreaterThan(1);
      const seen = await ctx.t.driver.exec(h, {
        // The lease's command starts a moment after start() returns: waited for (bounded).
        command: [
          '/run/alacarte/bin/busybox',
          'sh',
          '-c',
          'n=0; until p=$(pidof sleep) || [ $n -ge 100 ]; do n=$((n+1)); sleep 0.05; done; tr "\\0" "\\n" < /proc/$p/environ',
        ],
        timeoutMs: 5000,
        maxOutputBytes: 1 << 16,
      });
      for (const [k, v] of Object.entries(env))
        expect(seen.stdout.toString().split('\n')).toContain(`${k}=${v}`);
      // No list(), no stop(): the sandbox's own init ends it.
      expect(await waitFor(() => !processAlive(pid), deadline + 5000 - Date.now())).toBe(true);
      expect(await waitFor(async () => !(await ctx.t.driver.isRunning(h)), 5000)).toBe(true);
    });

    settings.extra?.(ctx);
  });
}
