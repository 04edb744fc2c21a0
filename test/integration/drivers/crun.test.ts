import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect, type Socket } from 'node:net';
import { getPriority, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ComputeDriver, SandboxRef } from '../../../src/drivers/compute-driver.js';
import { CrunDriver } from '../../../src/drivers/crun/crun-driver.js';
import { mountsUnder } from '../../../src/drivers/crun/mounts.js';
import { waitForShell } from '../../helpers/terminal.js';
import {
  computeDriverContract,
  sh as contractSh,
  newLeaseId,
  sh,
  TEST_LIMITS,
  waitFor,
} from './compute-driver.contract.js';
import {
  cpuUsageNs,
  crunSkipReason,
  makeCrunTarget,
  removeDriverFiles,
  tempBase,
  tempDriverOptions,
} from './crun-target.js';
import { isolationContract, processAlive } from './isolation.contract.js';

if (crunSkipReason) {
  describe.skip(`crun driver: skipped, ${crunSkipReason}`, () => {
    it('runs only as root with crun and busybox-static', () => {});
  });
} else {
  computeDriverContract('crun', makeCrunTarget);

  isolationContract('crun', (imagesDir) => makeCrunTarget(imagesDir ? { imagesDir } : {}), {
    // Quota per 100 ms period: one period of slack for the window's edges.
    cpu: { warmupMs: 500, windowMs: 2000, slack: 0.05 },
    startMs: 3000,
    known: {
      'runs in a range of host uids no other sandbox has':
        "crun sandboxes share one id range (the image store's id base), so an image's files need no shifting per sandbox",
    },
    extra: (ctx) => {
      const { image, start, started, tool } = ctx;
      const sh = (driver: ComputeDriver, sandbox: SandboxRef, script: string) =>
        contractSh(driver, sandbox, script, undefined, tool(['sh', '-c']));
      it('resizes inside the sandbox: a shell whose fd 0 is a FIFO gets an answer, not a hung node', async () => {
        const a = await start();
        const session = await ctx.t.driver.attach(a, { cols: 80, rows: 24 });
        let screen = '';
        session.stream.on('data', (b: Buffer) => {
          screen += b.toString('utf8');
        });
        await waitForShell(session.stream, () => screen);
        // The shell's stdin becomes a FIFO whose only writer is gone.
        session.stream.write('mkfifo /tmp/f; (sleep 1 > /tmp/f &); echo fifo-ready; exec 0</tmp/f\n');
        expect(await waitFor(() => /fifo-ready\r*\n/.test(screen), 15_000)).toBe(true);
        await sleep(1500);
        const outcome = await Promise.race([
          session.resize({ cols: 90, rows: 20 }).then(
            () => 'resolved',
            (e: Error) => e.message,
          ),
          sleep(20_000).then(() => 'still pending'),
        ]);
        expect(outcome).not.toBe('still pending');
        // Many resizes at once cost one process in the sandbox at a time, and all settle.
        const many = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) => session.resize({ cols: 50 + i, rows: 20 })),
        );
        expect(many).toHaveLength(20);
        session.close();
        await session.exited;
        // The sandbox is unharmed: a new session works and resizes.
        const again = await ctx.t.driver.attach(a, { cols: 100, rows: 30 });
        let text = '';
        again.stream.on('data', (b: Buffer) => {
          text += b.toString('utf8');
        });
        await waitForShell(again.stream, () => text);
        await again.resize({ cols: 132, rows: 43 });
        again.stream.write('stty size; exit\n');
        await again.exited;
        expect(text).toMatch(/43 132/);
      });

      it("relays a port with a process that is neither root nor the sandboxes' id on the host", async () => {
        const leaseId = newLeaseId();
        started.push(leaseId);
        const a = await ctx.t.driver.start(
          {
            leaseId,
            image: image.name,
            ports: [8080],
            command: tool(['sh', '-c', 'while :; do nc -l -p 8080 -e cat; done']),
          },
          TEST_LIMITS,
          new Date(Date.now() + 300_000),
        );
        const port = Number(new URL(a.ports[8080] ?? '').port);
        const relays = () =>
          readdirSync('/proc')
            .filter((p) => /^\d+$/.test(p))
            .filter((p) => {
              try {
                const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
                // Dialling the loopback the server listens on (busybox `nc -l` takes IPv6's `::`).
                return (
                  cmd.includes('nc') &&
                  cmd.includes('8080') &&
                  (cmd.includes('127.0.0.1') || cmd.includes('::1'))
                );
              } catch {
                return false;
              }
            })
            // Ours (not another test process's): our child, or the child of our child.
            .filter((p) => {
              const parent = (pid: string) =>
                /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
              try {
                const up = parent(p);
                return up === String(process.pid) || parent(up) === String(process.pid);
              } catch {
                return false;
              }
            });
        let socket: Socket | undefined;
        let relay: string | undefined;
        await waitFor(async () => {
          socket?.destroy();
          socket = connect(port, '127.0.0.1');
          socket.on('error', () => {});
          await sleep(200);
          relay = relays()[0];
          return relay !== undefined;
        }, 10_000);
        try {
          expect(relay).toBeDefined();
          const status = readFileSync(`/proc/${relay}/status`, 'utf8');
          expect(status).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
          expect(status).toMatch(/^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
          expect(status).toMatch(/^CapEff:\s+0+$/m);
        } finally {
          socket?.destroy();
        }
      });

      it("passes a command that looks like the runtime's options to the sandbox as the command's own", async () => {
        const a = await start();
        const r = await ctx.t.driver.exec(a, {
          command: tool([
            'sh',
            '-c',
            'grep CapEff /proc/self/status; pwd',
            '--cap=CAP_SYS_ADMIN',
            '--cwd=/etc',
          ]),
          timeoutMs: 10_000,
          maxOutputBytes: 4096,
        });
        const eff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(r.stdout.toString())?.[1] ?? '0'}`);
        expect(eff).toBeGreaterThan(0n);
        expect(eff & (1n << 21n)).toBe(0n); // CAP_SYS_ADMIN
        // The image's working directory, not the one the runtime option in the command names.
        expect(r.stdout.toString()).toMatch(new RegExp(`^${image.workingDir}$`, 'm'));
      });

      it("hands the lease's env to an attached shell intact, with nothing of it run on the host", async () => {
        const marker = join(tmpdir(), `alacarte-attach-marker-${randomBytes(4).toString('hex')}`);
        const tricky = `it's "$(touch ${marker})" \`touch ${marker}\` ; touch ${marker} $HOME`;
        const leaseId = newLeaseId();
        started.push(leaseId);
        const a = await ctx.t.driver.start(
          { leaseId, image: image.name, env: { Q: tricky } },
          TEST_LIMITS,
          new Date(Date.now() + 300_000),
        );
        const session = await ctx.t.driver.attach(a, { cols: 200, rows: 30 });
        let screen = '';
        session.stream.on('data', (b: Buffer) => {
          screen += b.toString('utf8');
        });
        await waitForShell(session.stream, () => screen);
        session.stream.write('printf "<%s>\\n" "$Q"; exit\n');
        await session.exited;
        expect(screen).toContain(`<${tricky}>`);
        expect(existsSync(marker)).toBe(false);
      });

      it("removes a sandbox without following its tenant's symlinks to host paths", async () => {
        const victim = mkdtempSync(join(tmpdir(), 'alacarte-host-victim-'));
        writeFileSync(join(victim, 'keep'), 'host data');
        try {
          const a = await start();
          // Links with the host's absolute paths, in the writable layer and in the image's directories.
          await sh(
            ctx.t.driver,
            a,
            `ln -s ${victim} /root/escape; ln -s ${victim}/keep /tmp/keep; mkdir -p /run/x; ln -s / /bin/root-link; echo done`,
          );
          await ctx.t.driver.stop(a);
          expect(readFileSync(join(victim, 'keep'), 'utf8')).toBe('host data');
          expect(existsSync(join(ctx.t.options.runtimeDir, a.leaseId))).toBe(false);
          expect(existsSync('/bin/busybox')).toBe(true);
        } finally {
          rmSync(victim, { recursive: true, force: true });
        }
      });

      it("cannot reach into init's memory, which holds the deadline", async () => {
        const a = await start();
        // Static busybox maps its code at 4 MiB: unmasked, these reads and writes would reach it.
        const r = await sh(
          ctx.t.driver,
          a,
          'for f in /proc/1/mem /proc/1/task/1/mem; do dd if=$f bs=1 skip=4194304 count=4 2>/dev/null | wc -c; done; kill -STOP 1; kill -KILL 1; sleep 0.2; ps -o pid,stat | grep -c "^ *1 "',
        );
        expect(r.out).toBe('0\n0\n1\n');
        expect((await sh(ctx.t.driver, a, 'echo alive')).out).toBe('alive\n');
        expect(ctx.t.driver.initPid(a.leaseId)).toBeDefined();
        // Root inside may take init's own uid: init stays closed, being non-dumpable. Each probe
        // prints its name only if it got in; `id -u` shows the uid was taken.
        const B = '/run/alacarte/bin/busybox';
        const asInit = await sh(
          ctx.t.driver,
          a,
          `${B} nsenter -S 65533 -G 65533 -F ${B} sh -c '${B} id -u; ( exec 4<>/proc/1/mem ) 2>/dev/null && echo mem; ${B} cat /proc/1/environ >/dev/null 2>&1 && echo environ; ${B} ls /proc/1/fd >/dev/null 2>&1 && echo fd; ${B} readlink /proc/1/exe >/dev/null 2>&1 && echo exe; for s in 1 2 3 9 15 19; do kill -$s 1 2>/dev/null; done; echo done'`,
        );
        expect(asInit.out).toBe('65533\ndone\n');
        // Nor may it starve init within the sandbox's CPU quota: no lower priority for init (by its
        // pid, its process group or its uid), while a process of its own may still be reniced.
        const nice = await sh(
          ctx.t.driver,
          a,
          `${B} nsenter -S 65533 -G 65533 -F ${B} sh -c '${B} renice -n 19 -p 1 && echo pid; ${B} renice -n 19 -g 1 && echo pgrp; ${B} renice -n 19 -u 65533 && echo user; ${B} renice -n 5 -p $$ >/dev/null && echo own' 2>/dev/null`,
        );
        expect(nice.out).toBe('own\n');
        if (image.name === 'debian' && process.arch === 'x64') {
          // sched_setscheduler(1, SCHED_IDLE), as init's uid (perl: the image has no chrt of busybox).
          const idle = await sh(
            ctx.t.driver,
            a,
            `${B} nsenter -S 65533 -G 65533 -F /usr/bin/perl -e 'my $p = pack("i", 0); print syscall(144, 1, 5, $p) == 0 ? "idle\n" : "refused\n"'`,
          );
          expect(idle.out, idle.err).toBe('refused\n');
        }
        // From the host, init is that uid, not root inside, and not dumpable: its /proc files belong
        // to root inside (the host's idBase), not to init's own uid.
        const base = Number((await sh(ctx.t.driver, a, 'cat /proc/self/uid_map')).out.trim().split(/\s+/)[1]);
        expect(base).toBeGreaterThanOrEqual(100_000);
        const pid = ctx.t.driver.initPid(a.leaseId) ?? 0;
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        expect(Number(/^Uid:\s+(\d+)/m.exec(status)?.[1])).toBe(base + 65533);
        // Its nice value (field 19 of stat, after the parenthesised name) and policy (field 41) are
        // untouched: those it inherited from the node (a host may run everything at a nice other than 0).
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
        expect([stat[16], stat[38]]).toEqual([String(getPriority()), '0']);
        expect(statSync(`/proc/${pid}/environ`).uid).toBe(base);
        expect(await ctx.t.driver.isRunning(a)).toBe(true);
      });
    },
  });

  describe('crun driver after a restart of the node', () => {
    it('finds running sandboxes again, with their deadline and ports, and drives them', async () => {
      const first = await makeCrunTarget();
      const leaseId = newLeaseId();
      let second: CrunDriver | undefined;
      try {
        first.driver.prewarm('busybox', TEST_LIMITS.diskMib);
        const deadline = new Date(Date.now() + 120_000);
        const h = await first.driver.start(
          { leaseId, image: 'busybox', ports: [8080], command: ['httpd', '-f', '-p', '8080', '-h', '/etc'] },
          TEST_LIMITS,
          deadline,
        );
        // The node goes away (its listeners with it); the sandbox stays.
        await first.driver.close();
        second = await CrunDriver.create(first.options);
        const listed = await second.list();
        expect(listed).toEqual([{ leaseId, deadline, ports: h.ports }]);
        expect((await sh(second, h, 'cat /run/alacarte/lease.json')).out).toContain(leaseId);
        let body = '';
        await waitFor(async () => {
          try {
            const res = await fetch(`${h.ports[8080]}/group`);
            body = await res.text();
            return res.ok;
          } catch {
            return false;
          }
        }, 5000);
        expect(body).toMatch(/^root:x:0:/);
        await second.stop(h);
        expect(await second.list()).toEqual([]);
      } finally {
        await second?.stop({ leaseId }).catch(() => {});
        await second?.close();
        await first.dispose();
      }
    });
  });

  describe('crun deadline with the control plane killed -9', () => {
    let compiled: string;
    beforeAll(() => {
      // The child is a plain node process, so it runs the driver compiled to JavaScript.
      // Inside the project, so that the compiled code resolves packages from node_modules.
      const cache = resolve('node_modules/.cache');
      mkdirSync(cache, { recursive: true });
      compiled = mkdtempSync(join(cache, 'alacarte-driver-js-'));
      const tsc = spawnSync(
        process.execPath,
        [
          resolve('node_modules/typescript/bin/tsc'),
          '-p',
          'tsconfig.build.json',
          '--outDir',
          compiled,
          '--declaration',
          'false',
          '--sourceMap',
          'false',
        ],
        { encoding: 'utf8' },
      );
      if (tsc.status !== 0) throw new Error(`tsc failed: ${tsc.stdout}${tsc.stderr}`);
      // The children type into terminals with the tests' own helper (it imports only Node's).
      const helper = readFileSync(resolve('test/helpers/terminal.ts'), 'utf8');
      const js = ts.transpileModule(helper, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      });
      writeFileSync(join(compiled, 'terminal.js'), js.outputText);
    });
    afterAll(() => {
      if (compiled) rmSync(compiled, { recursive: true, force: true });
    });

    it('ends the sandbox within 5 s of its deadline, and the next driver cleans up', async () => {
      const base = tempBase();
      const options = tempDriverOptions(base);
      const leaseId = newLeaseId();
      const deadline = Date.now() + 4000;
      const childCode = `
        const { CrunDriver } = await import(${JSON.stringify(join(compiled, 'drivers/crun/crun-driver.js'))});
        const d = await CrunDriver.create(${JSON.stringify(options)});
        await d.start({ leaseId: ${JSON.stringify(leaseId)}, image: 'busybox', ports: [8080] },
          ${JSON.stringify(TEST_LIMITS)}, new Date(${deadline}));
        process.stdout.write(JSON.stringify({ pid: d.initPid(${JSON.stringify(leaseId)}) }) + '\\n');
        setInterval(() => {}, 1000);
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', childCode], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let driver: CrunDriver | undefined;
      try {
        const line = await new Promise<string>((resolveLine, reject) => {
          let buf = '';
          child.stdout.on('data', (b: Buffer) => {
            buf += b.toString();
            if (buf.includes('\n')) resolveLine(buf);
          });
          child.on('exit', (code) => reject(new Error(`child exited ${code}`)));
        });
        const pid = (JSON.parse(line) as { pid: number }).pid;
        expect(pid).toBeGreaterThan(1);
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        // The control plane is dead; the sandbox is not, until its deadline.
        expect(existsSync(`/proc/${pid}`)).toBe(true);
        const alive = () => {
          try {
            return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
          } catch {
            return false;
          }
        };
        const gone = await waitFor(() => !alive(), deadline + 5000 - Date.now());
        expect(gone).toBe(true);

        // A node that comes back finds nothing running and leaves nothing behind.
        driver = await CrunDriver.create(options);
        expect(await driver.list()).toEqual([]);
        expect(mountsUnder(options.runtimeDir)).toEqual([]);
        expect(existsSync(join(options.runtimeDir, leaseId))).toBe(false);
      } finally {
        child.kill('SIGKILL');
        if (!driver) driver = await CrunDriver.create(options).catch(() => undefined);
        if (driver) {
          await driver.stop({ leaseId });
          await driver.close();
        }
        await removeDriverFiles(options, base);
      }
    });

    /** Runs the compiled driver in a node process of its own; resolves with its first output line. */
    function driverChild(code: string, underTerminal = false) {
      const file = join(compiled, `child-${randomBytes(4).toString('hex')}.mjs`);
      writeFileSync(
        file,
        `const { CrunDriver } = await import(${JSON.stringify(join(compiled, 'drivers/crun/crun-driver.js'))});\n${code}`,
      );
      // Under `script`, the child has a controlling terminal of its own (size 0x0 until set).
      const child = underTerminal
        ? spawn('script', ['-qfec', `${process.execPath} ${file}`, '/dev/null'], {
            stdio: ['pipe', 'pipe', 'inherit'],
          })
        : spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
      const line = new Promise<string>((resolveLine, reject) => {
        let buf = '';
        child.stdout?.on('data', (b: Buffer) => {
          buf += b.toString();
          const m = /^RESULT (.*)$/m.exec(buf);
          if (m?.[1]) resolveLine(m[1].trim());
        });
        child.on('exit', (code) => reject(new Error(`child exited ${code}: ${buf}`)));
      });
      return { child, line };
    }

    it("ends every sandbox at its deadline with the node killed -9, whatever the leases' env names", async () => {
      const base = tempBase();
      const options = tempDriverOptions(base);
      const hostile: Record<string, string>[] = [
        { D: '/dev/zero' },
        { R: '/nonexistent', d: '99999999999', r: '3600', x: 'x', started: '' },
        { PATH: '/dev/zero', IFS: '0123456789', ENV: '/dev/zero', HOME: '/dev/zero' },
      ];
      const leases = hostile.map((env, i) => ({
        leaseId: newLeaseId(),
        env,
        deadline: Date.now() + 4000 + i * 1000,
      }));
      const { child, line } = driverChild(`
        const d = await CrunDriver.create(${JSON.stringify(options)});
        const pids = [];
        for (const l of ${JSON.stringify(leases)}) {
          await d.start({ leaseId: l.leaseId, image: 'busybox', env: l.env, command: ['/bin/sleep', '1000'] },
            ${JSON.stringify(TEST_LIMITS)}, new Date(l.deadline));
          pids.push(d.initPid(l.leaseId));
        }
        process.stdout.write('RESULT ' + JSON.stringify(pids) + '\\n');
        setInterval(() => {}, 1000);
      `);
      let driver: CrunDriver | undefined;
      try {
        const pids = JSON.parse(await line) as number[];
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        for (const [i, pid] of pids.entries()) {
          expect(pid).toBeGreaterThan(1);
          const deadline = leases[i]?.deadline ?? 0;
          // Alive until its deadline (it is ended by nobody else)...
          if (Date.now() < deadline - 500) expect(processAlive(pid)).toBe(true);
          // ...and gone within 5 s of it, with no node to end it.
          const gone = await waitFor(() => !processAlive(pid), deadline + 5000 - Date.now());
          expect(gone, `sandbox ${i} (env ${JSON.stringify(hostile[i])}) outlived its deadline`).toBe(true);
        }
      } finally {
        child.kill('SIGKILL');
        driver = await CrunDriver.create(options).catch(() => undefined);
        if (driver) {
          for (const l of leases) await driver.stop({ leaseId: l.leaseId });
          await driver.close();
        }
        await removeDriverFiles(options, base);
      }
    });

    it('ends a sandbox at its deadline with the node killed -9 while its tenant attacks init and burns its CPU', async () => {
      const base = tempBase();
      const options = tempDriverOptions(base);
      const leaseId = newLeaseId();
      const deadline = Date.now() + 5000;
      const B = '/run/alacarte/bin/busybox';
      // As root and as init's uid: write into init's code, lower its priority, stop and kill it;
      // then keep a small CPU quota busy, so that an init that lost its priority would starve.
      const attack = [
        `for u in 0 65533; do ${B} nsenter -S $u -G $u -F ${B} sh -c "printf xxxx | ${B} dd of=/proc/1/mem bs=1 seek=4194304 conv=notrunc; ${B} renice -n 19 -p 1; ${B} renice -n 19 -g 1; ${B} renice -n 19 -u 65533; kill -STOP 1; kill -9 1"; done >/dev/null 2>&1`,
        'for i in 1 2 3 4 5 6 7 8; do (while :; do :; done) & done',
        'wait',
      ].join('\n');
      const { child, line } = driverChild(`
        const d = await CrunDriver.create(${JSON.stringify(options)});
        await d.start({ leaseId: ${JSON.stringify(leaseId)}, image: 'busybox', command: ['sh', '-c', ${JSON.stringify(attack)}] },
          ${JSON.stringify({ ...TEST_LIMITS, vcpu: 0.05 })}, new Date(${deadline}));
        process.stdout.write('RESULT ' + JSON.stringify({ pid: d.initPid(${JSON.stringify(leaseId)}), cgroup: d.cgroupPath(${JSON.stringify(leaseId)}) }) + '\\n');
        setInterval(() => {}, 1000);
      `);
      let driver: CrunDriver | undefined;
      try {
        const { pid, cgroup } = JSON.parse(await line) as { pid: number; cgroup: string };
        expect(pid).toBeGreaterThan(1);
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        // The attack runs and burns: the sandbox's CPU time grows while it lives.
        const u0 = cpuUsageNs(cgroup);
        await sleep(1000);
        if (Date.now() < deadline - 500) {
          expect(processAlive(pid)).toBe(true);
          expect(cpuUsageNs(cgroup)).toBeGreaterThan(u0);
        }
        const gone = await waitFor(() => !processAlive(pid), deadline + 5000 - Date.now());
        expect(gone, 'the sandbox outlived its deadline').toBe(true);
      } finally {
        child.kill('SIGKILL');
        driver = await CrunDriver.create(options).catch(() => undefined);
        if (driver) {
          await driver.stop({ leaseId });
          await driver.close();
        }
        await removeDriverFiles(options, base);
      }
    });

    it("resizes a shell whose fd 0 is /dev/tty without touching the node's own terminal", async () => {
      const base = tempBase();
      const options = tempDriverOptions(base);
      const leaseId = newLeaseId();
      const { child, line } = driverChild(
        `
        const d = await CrunDriver.create(${JSON.stringify(options)});
        const h = await d.start({ leaseId: ${JSON.stringify(leaseId)}, image: 'busybox' },
          ${JSON.stringify(TEST_LIMITS)}, new Date(Date.now() + 60000));
        const before = process.stdout.getWindowSize();
        const s = await d.attach(h, { cols: 80, rows: 24 });
        let screen = '';
        s.stream.on('data', (b) => { screen += b.toString(); });
        const { waitForShell } = await import(${JSON.stringify(join(compiled, 'terminal.js'))});
        await waitForShell(s.stream, () => screen);
        // /dev/tty inside is the shell's own terminal; opened by another process it is that one's.
        // (Quoted so that only the output, not the echo of the typed line, shows "swapped".)
        s.stream.write('exec 0</dev/tty; echo swa""pped\\n');
        for (let i = 0; i < 200 && !/swapped\\r?\\n/.test(screen); i++) await new Promise((r) => setTimeout(r, 50));
        const swapped = /swapped\\r?\\n/.test(screen);
        const resized = await s.resize({ cols: 77, rows: 11 }).then(() => 'ok', (e) => String(e));
        const after = process.stdout.getWindowSize();
        s.close();
        await d.stop(h);
        await d.close();
        process.stdout.write('RESULT ' + JSON.stringify({ before, after, resized, swapped }) + '\\n');
        process.exit(0);
      `,
        true,
      );
      try {
        const result = JSON.parse(await line) as {
          before: number[];
          after: number[];
          resized: string;
          swapped: boolean;
        };
        // The shell did take /dev/tty as its input: the case is the one the title names.
        expect(result.swapped).toBe(true);
        expect(result.after).toEqual(result.before);
        expect(result.after).not.toEqual([77, 11]);
      } finally {
        child.kill('SIGKILL');
        const driver = await CrunDriver.create(options).catch(() => undefined);
        if (driver) {
          await driver.stop({ leaseId });
          await driver.close();
        }
        await removeDriverFiles(options, base);
      }
    });
  });
}
