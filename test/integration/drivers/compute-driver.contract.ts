import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it as vitestIt } from 'vitest';
import { AlacarteError } from '../../../src/core/errors.js';
import type {
  ComputeDriver,
  SandboxHandle,
  SandboxLimits,
  SandboxRef,
} from '../../../src/drivers/compute-driver.js';
import { writeImageConfig } from '../../../src/drivers/crun/image-config.js';
import { typeUntil } from '../../helpers/terminal.js';

/** The small offer every contract case runs with. */
export const TEST_LIMITS: SandboxLimits = { vcpu: 0.5, memoryMib: 64, pids: 64, diskMib: 16 };

export function newLeaseId(): string {
  return `lse_${randomBytes(8).toString('hex')}`;
}

export async function sh(
  driver: ComputeDriver,
  sandbox: SandboxRef,
  script: string,
  stdin?: string,
  /** The shell to run the script with (an image's own `sh` by default). */
  shell: readonly string[] = ['sh', '-c'],
) {
  const r = await driver.exec(sandbox, {
    command: [...shell, script],
    stdin,
    timeoutMs: 20_000,
    maxOutputBytes: 1 << 20,
  });
  return { code: r.exitCode, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8') };
}

export async function waitFor(
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await condition()) return true;
    await sleep(100);
  }
  return condition();
}

/** Whether, within 5 s, exactly `n` of the sandbox's processes have arguments matching `pattern` (grep). */
function untilRunning(
  driver: ComputeDriver,
  sandbox: SandboxRef,
  pattern: string,
  n: number,
): Promise<boolean> {
  return waitFor(
    async () => (await sh(driver, sandbox, `ps -o args | grep -c "${pattern}" || true`)).out === `${n}\n`,
    5000,
  );
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AlacarteError);
  expect((error as AlacarteError).code).toBe(code);
}

export interface ContractTarget {
  driver: ComputeDriver;
  /** The driver's image store (`<imagesDir>/<name>`, a config beside each: image-config.ts). */
  imagesDir: string;
  /** Removes whatever the target made beyond the sandboxes (temporary directories...). */
  dispose(): Promise<void>;
}

/** What CONFIGURED_IMAGE says about itself (its config: image-config.ts), for the case to compare. */
const CONFIGURED = {
  env: { GREETING: 'hello from the image', OVERRIDDEN: 'by the image' },
  working_dir: '/srv/app',
  /** Records what it saw, then stays (a server would). */
  entrypoint: [
    '/bin/sh',
    '-c',
    'echo "$GREETING|$OVERRIDDEN|$*|$(pwd)" > /tmp/started; exec sleep 100000',
    'entry',
  ],
  cmd: ['from-cmd'],
  shell: '/bin/image-shell',
};
const CONFIGURED_IMAGE = 'configured';

/**
 * An image of the target's store as an operator drops one in (owned by root, unshifted: each driver
 * prepares it on first use): busybox's tree with a working directory, a shell of its own that says
 * so, and a config (image-config.ts).
 */
function configuredImage(imagesDir: string): string {
  const dir = join(imagesDir, CONFIGURED_IMAGE);
  if (existsSync(dir)) return CONFIGURED_IMAGE;
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  cpSync(join(imagesDir, 'busybox'), tmp, { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(tmp, CONFIGURED.working_dir), { recursive: true, mode: 0o755 });
  writeFileSync(join(tmp, CONFIGURED.shell), '#!/bin/sh\necho "the image shell"\nexec /bin/sh "$@"\n', {
    mode: 0o755,
  });
  writeImageConfig(dir, { description: 'a configured image', ...CONFIGURED });
  renameSync(tmp, dir);
  return CONFIGURED_IMAGE;
}

/**
 * busybox's tree with a program of its own earlier in PATH than busybox's `sleep` applet: a copy of
 * busybox (a regular file, so /proc/<pid>/exe tells which one runs), as an operator drops one in.
 */
function shadowingImage(imagesDir: string): string {
  const name = 'shadowing';
  const dir = join(imagesDir, name);
  if (existsSync(dir)) return name;
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  cpSync(join(imagesDir, 'busybox'), tmp, { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(tmp, 'usr/local/bin'), { recursive: true, mode: 0o755 });
  copyFileSync(join(tmp, 'bin/busybox'), join(tmp, 'usr/local/bin/sleep'));
  chmodSync(join(tmp, 'usr/local/bin/sleep'), 0o755);
  renameSync(tmp, dir);
  return name;
}

/**
 * The behaviour every ComputeDriver must show (crun today, gVisor and Kubernetes later). The target
 * must offer the `busybox` image. Every sandbox started here is stopped in afterAll, even on failure.
 */
export function computeDriverContract(
  name: string,
  makeTarget: () => Promise<ContractTarget>,
  /** Cases this target cannot pass, by title, each with the reason (shown in the test name). */
  known: Record<string, string> = {},
): void {
  const it = (title: string, fn: () => Promise<void>) => {
    const reason = known[title];
    if (reason) vitestIt.skip(`${title} (skipped: ${reason})`, fn);
    else vitestIt(title, fn);
  };
  describe(`ComputeDriver contract: ${name}`, () => {
    let target: ContractTarget;
    let driver: ComputeDriver;
    const started: string[] = [];

    beforeAll(async () => {
      target = await makeTarget();
      driver = target.driver;
    });

    afterAll(async () => {
      if (!target) return;
      await Promise.allSettled(started.map((leaseId) => driver.stop({ leaseId })));
      await driver.close();
      await target.dispose();
    });

    async function start(
      extra: { ports?: number[]; command?: string[]; env?: Record<string, string> } = {},
      seconds = 120,
    ) {
      const leaseId = newLeaseId();
      started.push(leaseId);
      return driver.start(
        { leaseId, image: 'busybox', ...extra },
        TEST_LIMITS,
        new Date(Date.now() + seconds * 1000),
      );
    }

    it('starts a sandbox that answers exec at once and shows up in list()', async () => {
      const handle = await start({ env: { GREETING: 'hello', HOME: '/tmp' } });
      expect(handle.leaseId).toMatch(/^lse_/);
      const r = await sh(driver, handle, 'echo "$GREETING from $(id -u) in $HOME"');
      expect(r).toEqual({ code: 0, out: 'hello from 0 in /tmp\n', err: '' });
      const listed = await driver.list();
      const entry = listed.find((s) => s.leaseId === handle.leaseId);
      expect(entry?.deadline.getTime()).toBe(handle.deadline.getTime());
    });

    it('refuses a second sandbox for the same lease and a bad spec, starting nothing', async () => {
      const handle = await start();
      await expectCode(
        driver.start({ leaseId: handle.leaseId, image: 'busybox' }, TEST_LIMITS, new Date()),
        'invalid_request',
      );
      await expectCode(
        driver.start({ leaseId: '../etc', image: 'busybox' }, TEST_LIMITS, new Date()),
        'invalid_request',
      );
      await expectCode(
        driver.start({ leaseId: newLeaseId(), image: 'no-such-image' }, TEST_LIMITS, new Date()),
        'invalid_request',
      );
      await expectCode(
        driver.start({ leaseId: newLeaseId(), image: 'busybox', ports: [0] }, TEST_LIMITS, new Date()),
        'invalid_request',
      );
      expect((await sh(driver, handle, 'echo still')).out).toBe('still\n');
    });

    it('exec passes stdin, keeps stdout and stderr apart and returns the exit code', async () => {
      const handle = await start();
      const r = await sh(driver, handle, 'read line; echo "got $line"; echo oops >&2; exit 3', 'abc\n');
      expect(r).toEqual({ code: 3, out: 'got abc\n', err: 'oops\n' });
    });

    it('exec caps output and says so', async () => {
      const handle = await start();
      const r = await driver.exec(handle, {
        command: ['sh', '-c', 'yes | head -c 100000'],
        timeoutMs: 20_000,
        maxOutputBytes: 1000,
      });
      expect(r.stdout.length).toBe(1000);
      expect(r.truncated).toBe(true);
      expect(r.exitCode).toBe(0);
    });

    it('exec kills a command that outlives its timeout', async () => {
      const handle = await start();
      const r = await driver.exec(handle, { command: ['sleep', '30'], timeoutMs: 300, maxOutputBytes: 100 });
      expect(r.timedOut).toBe(true);
      expect(r.exitCode).toBe(137);
      // The sleep is gone inside, not just our side of it.
      expect((await sh(driver, handle, 'ps -o args | grep -c "^[s]leep 30$" || true')).out.trim()).toBe('0');
    });

    it('exec kills its command at once when its caller goes away (its signal aborts)', async () => {
      const handle = await start();
      const gone = new AbortController();
      setTimeout(() => gone.abort(), 300);
      const began = Date.now();
      const r = await driver.exec(handle, {
        command: ['sh', '-c', 'sleep 302 & sleep 303'],
        timeoutMs: 600_000,
        maxOutputBytes: 100,
        signal: gone.signal,
      });
      expect(r.timedOut).toBe(true);
      expect(Date.now() - began).toBeLessThan(10_000);
      expect((await sh(driver, handle, 'ps -o args | grep -c "^[s]leep 30[23]$" || true')).out.trim()).toBe(
        '0',
      );
    });

    it('exec that times out kills every process it started, not only the first', async () => {
      const handle = await start();
      const r = await driver.exec(handle, {
        command: ['sh', '-c', 'sleep 301 & (sleep 301 &); sleep 301'],
        timeoutMs: 500,
        maxOutputBytes: 100,
      });
      expect(r.timedOut).toBe(true);
      expect((await sh(driver, handle, 'ps -o args | grep -c "^sleep 301" || true')).out.trim()).toBe('0');
    });

    it('exec returns when the command exits, even if it left a process holding its output', async () => {
      const handle = await start();
      expect(await sh(driver, handle, 'sleep 100 & echo started')).toEqual({
        code: 0,
        out: 'started\n',
        err: '',
      });
      expect((await sh(driver, handle, 'ps -o args | grep -c "^sleep 100"')).out).toBe('1\n');
    });

    it('spawn streams megabytes both ways, byte for byte, and returns the exit code', async () => {
      const handle = await start();
      const data = randomBytes(3 << 20);
      const proc = await driver.spawn(handle, { command: ['sh', '-c', 'cat; echo done >&2; exit 5'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      proc.stdout.on('data', (b: Buffer) => out.push(b));
      proc.stderr.on('data', (b: Buffer) => err.push(b));
      proc.stdin.end(data);
      expect(await proc.exited).toBe(5);
      expect(Buffer.concat(out).equals(data)).toBe(true);
      expect(Buffer.concat(err).toString()).toBe('done\n');
    });

    it('spawn waits for a slow reader: output is never cut short', async () => {
      const handle = await start();
      const proc = await driver.spawn(handle, { command: ['sh', '-c', 'head -c 2000000 /dev/zero'] });
      proc.stdin.end();
      // Nobody reads for a while after the command has exited with its last bytes still unread.
      await sleep(800);
      let n = 0;
      proc.stdout.on('data', (b: Buffer) => {
        n += b.length;
      });
      proc.stderr.resume();
      expect(await proc.exited).toBe(0);
      expect(n).toBe(2_000_000);
    });

    it('spawn ends for a consumer that reads one stream when the other holds nothing', async () => {
      const handle = await start();
      const hung = (p: Promise<number>) => Promise.race([p, sleep(10_000).then(() => 'hung')]);
      // An SSH channel or a file download reads what it needs: the other stream is never touched.
      for (const [script, read, code] of [
        ['echo out', 'stdout', 0],
        ['echo err >&2; exit 3', 'stderr', 3],
      ] as const) {
        const proc = await driver.spawn(handle, { command: ['sh', '-c', script] });
        proc.stdin.end();
        const seen: Buffer[] = [];
        proc[read].on('data', (b: Buffer) => seen.push(b));
        expect(await hung(proc.exited)).toBe(code);
        expect(Buffer.concat(seen).toString()).toBe(read === 'stdout' ? 'out\n' : 'err\n');
      }
    });

    it('spawn kill() ends the process and everything it started', async () => {
      const handle = await start();
      const proc = await driver.spawn(handle, { command: ['sh', '-c', 'sleep 302 & sleep 302'] });
      proc.stdout.resume();
      proc.stderr.resume();
      expect(await untilRunning(driver, handle, '^sleep 302', 2)).toBe(true);
      proc.kill();
      expect(await proc.exited).toBe(137);
      expect(await untilRunning(driver, handle, '^sleep 302', 0)).toBe(true);
      await expectCode(driver.spawn({ leaseId: newLeaseId() }, { command: ['true'] }), 'lease_not_running');
      await expectCode(driver.spawn(handle, { command: [] }), 'invalid_request');
    });

    it('sftp runs an SFTP server inside the sandbox, whatever the image holds', async () => {
      const handle = await start();
      const proc = await driver.sftp(handle);
      const out: Buffer[] = [];
      proc.stdout.on('data', (b: Buffer) => out.push(b));
      proc.stderr.resume();
      // SSH_FXP_INIT, version 3 (draft-ietf-secsh-filexfer-02): length 5, type 1, version 3.
      proc.stdin.write(Buffer.from([0, 0, 0, 5, 1, 0, 0, 0, 3]));
      expect(await waitFor(() => Buffer.concat(out).length >= 9, 10_000)).toBe(true);
      const answer = Buffer.concat(out);
      // SSH_FXP_VERSION (2) with version 3.
      expect(answer[4]).toBe(2);
      expect(answer.readUInt32BE(5)).toBe(3);
      proc.stdin.end();
      expect(await proc.exited).toBe(0);
      await expectCode(driver.sftp({ leaseId: newLeaseId() }), 'lease_not_running');
    });

    it('connect reaches a port on the sandbox loopback, and ends at once when nothing listens', async () => {
      const handle = await start({ command: ['sh', '-c', 'while true; do echo pong | nc -l -p 7777; done'] });
      let answer = '';
      expect(
        await waitFor(async () => {
          const stream = await driver.connect(handle, 7777);
          answer = await new Promise<string>((resolve) => {
            let text = '';
            stream.on('data', (b: Buffer) => {
              text += b.toString();
            });
            stream.once('end', () => resolve(text));
            stream.once('error', () => resolve(text));
            setTimeout(() => {
              stream.destroy();
              resolve(text);
            }, 3000);
          });
          return answer === 'pong\n';
        }, 10_000),
      ).toBe(true);
      const nothing = await driver.connect(handle, 7778);
      const ended = await new Promise<boolean>((resolve) => {
        nothing.resume();
        nothing.once('end', () => resolve(true));
        setTimeout(() => resolve(false), 5000);
      });
      expect(ended).toBe(true);
      nothing.destroy();
      await expectCode(driver.connect(handle, 0), 'invalid_request');
      await expectCode(driver.connect({ leaseId: newLeaseId() }, 7777), 'lease_not_running');
    });

    it('shows the lease id and deadline in /run/alacarte/lease.json, read-only', async () => {
      const handle = await start();
      const r = await sh(driver, handle, 'cat /run/alacarte/lease.json');
      expect(JSON.parse(r.out)).toEqual({ id: handle.leaseId, expires_at: handle.deadline.toISOString() });
      expect((await sh(driver, handle, 'echo x > /run/alacarte/lease.json')).code).not.toBe(0);
    });

    it('moves the deadline later and earlier, rewriting lease.json', async () => {
      // The short deadline is set once the sandbox runs, not at start: a start slower than it (a
      // loaded machine) would otherwise end the sandbox before the move could be tried.
      const handle = await start();
      const soon = new Date(Date.now() + 6000);
      await driver.setDeadline(handle, soon);
      const later = new Date(Date.now() + 120_000);
      await driver.setDeadline(handle, later);
      const r = await sh(driver, handle, 'cat /run/alacarte/lease.json');
      expect(JSON.parse(r.out).expires_at).toBe(later.toISOString());
      expect((await driver.list()).find((s) => s.leaseId === handle.leaseId)?.deadline.getTime()).toBe(
        later.getTime(),
      );
      await sleep(Math.max(0, soon.getTime() + 2000 - Date.now()));
      // Past the earlier deadline, still running.
      expect((await sh(driver, handle, 'echo alive')).out).toBe('alive\n');
      await driver.setDeadline(handle, new Date(Date.now() - 1000));
      const gone = await waitFor(
        async () => !(await driver.list()).some((s) => s.leaseId === handle.leaseId),
        8000,
      );
      expect(gone).toBe(true);
      await expectCode(sh(driver, handle, 'true'), 'lease_not_running');
    });

    it('rewrites lease.json and the deadline file whole: a reader inside never sees a torn file', async () => {
      const handle = await start();
      // Reads both files as fast as a shell can (no fork per read) until told to stop, bounded.
      const reader = await driver.spawn(handle, {
        command: [
          'sh',
          '-c',
          `n=0
echo reading
while [ ! -e /tmp/stop-reader ] && [ $n -lt 500000 ]; do
  l=; IFS= read -r l < /run/alacarte/lease.json
  case $l in '{"id":"${handle.leaseId}","expires_at":"'*'"}') ;; *) echo "torn lease.json: [$l]";; esac
  d=; read -r d < /run/alacarte/deadline
  case $d in ''|*[!0-9]*) echo "torn deadline: [$d]";; esac
  n=$((n+1))
done
echo "reads $n"`,
        ],
      });
      let out = '';
      reader.stdout.on('data', (b: Buffer) => {
        out += b.toString('utf8');
      });
      reader.stderr.resume();
      reader.stdin.end();
      // The rewrites below must meet the reader's loop: wait until it runs (the runtime's exec may
      // take longer to start it than the 60 rewrites take).
      expect(await waitFor(() => out.includes('reading'), 30_000)).toBe(true);
      for (let i = 0; i < 60; i++)
        await driver.setDeadline(handle, new Date(Date.now() + 120_000 + (i % 7) * 997_001));
      expect((await sh(driver, handle, 'touch /tmp/stop-reader')).code).toBe(0);
      expect(await reader.exited).toBe(0);
      expect(out).not.toMatch(/torn/);
      expect(Number(/reads (\d+)/.exec(out)?.[1])).toBeGreaterThan(60);
    });

    it('ends a sandbox at its deadline on its own', async () => {
      const handle = await start({}, 1);
      const gone = await waitFor(
        async () => !(await driver.list()).some((s) => s.leaseId === handle.leaseId),
        8000,
      );
      expect(gone).toBe(true);
    });

    it('reports through watch() a sandbox whose init has ended, and isRunning() follows', async () => {
      const exited: string[] = [];
      const unwatch = driver.watch((leaseId) => exited.push(leaseId));
      try {
        const ending = await start({}, 120);
        const staying = await start({}, 120);
        expect(await driver.isRunning(ending)).toBe(true);
        // Moved into the past: init ends the sandbox at once, on its own.
        await driver.setDeadline(ending, new Date(Date.now() - 1000));
        expect(await waitFor(() => exited.includes(ending.leaseId), 8000)).toBe(true);
        expect(await driver.isRunning(ending)).toBe(false);
        expect(exited).not.toContain(staying.leaseId);
        expect(await driver.isRunning(staying)).toBe(true);
        expect(await driver.isRunning({ leaseId: newLeaseId() })).toBe(false);
      } finally {
        unwatch();
      }
    });

    it('attaches an interactive shell on a real terminal that can be resized', async () => {
      const handle = await start();
      const session = await driver.attach(handle, { cols: 100, rows: 30 });
      let screen = '';
      session.stream.on('data', (b: Buffer) => {
        screen += b.toString('utf8');
      });
      // Typed until answered, as a person would: input that arrives before the shell has set up its
      // line editing can be flushed by it (seen on runc under load: the first line never ran).
      // Line ends as the terminals make them: runc once left the outer terminal translating too
      // (`\r\r\n`, every line of a run); what is checked is the terminal and its size.
      await typeUntil(session.stream, 'tty; stty size', () => screen, /\/dev\/pts\/\d+\r*\n30 100/);
      await session.resize({ cols: 132, rows: 43 });
      session.stream.write('stty size; exit 4\n');
      expect(await session.exited).toBe(4);
      expect(screen).toMatch(/43 132/);
    });

    it('runs an image as its config says: entrypoint and cmd, environment, working directory and shell', async () => {
      const image = configuredImage(target.imagesDir);
      const leaseId = newLeaseId();
      started.push(leaseId);
      const handle = await driver.start(
        { leaseId, image, env: { OVERRIDDEN: 'by the lease' } },
        TEST_LIMITS,
        new Date(Date.now() + 120_000),
      );
      // No command given: the image's entrypoint runs with its cmd, the image's environment under
      // the lease's, in the image's working directory (docker run semantics).
      const seen = async () => (await sh(driver, handle, 'cat /tmp/started 2>/dev/null')).out;
      await waitFor(async () => (await seen()) !== '', 10_000);
      expect(await seen()).toBe('hello from the image|by the lease|from-cmd|/srv/app\n');
      // Exec and spawn (a command over SSH) run there too, with the same environment.
      expect((await sh(driver, handle, 'pwd; echo "$GREETING|$OVERRIDDEN"')).out).toBe(
        '/srv/app\nhello from the image|by the lease\n',
      );
      const proc = await driver.spawn(handle, { command: ['pwd'] });
      let out = '';
      proc.stdout.on('data', (b: Buffer) => {
        out += b.toString();
      });
      proc.stderr.resume();
      proc.stdin.end();
      expect(await proc.exited).toBe(0);
      expect(out).toBe('/srv/app\n');
      // A terminal without a command runs the image's shell, there.
      const session = await driver.attach(handle, { cols: 80, rows: 24 });
      let screen = '';
      session.stream.on('data', (b: Buffer) => {
        screen += b.toString('utf8');
      });
      await typeUntil(session.stream, 'pwd', () => screen, /\/srv\/app\r*\n/);
      expect(screen).toContain('the image shell');
      session.stream.write('exit 3\n');
      expect(await session.exited).toBe(3);
    });

    it("runs a lease's command as an ordinary exec would: the program in PATH, its own argv[0] and environment", async () => {
      const leaseId = newLeaseId();
      started.push(leaseId);
      const handle = await driver.start(
        {
          leaseId,
          image: shadowingImage(target.imagesDir),
          command: ['sleep', '100003'],
          env: { MARK: "it's" },
        },
        TEST_LIMITS,
        new Date(Date.now() + 120_000),
      );
      // The command's process: the image's /usr/local/bin/sleep (not busybox's applet of that name,
      // which busybox's shell preferred), its command line as given.
      const find =
        'for p in /proc/[0-9]*; do [ "$(tr "\\0" " " < $p/cmdline 2>/dev/null)" = "sleep 100003 " ] && echo $p; done';
      let pid = '';
      await waitFor(async () => {
        pid = (await sh(driver, handle, find)).out.trim().replace('/proc/', '');
        return pid !== '';
      }, 10_000);
      expect(pid).toMatch(/^[0-9]+$/);
      expect((await sh(driver, handle, `readlink /proc/${pid}/exe`)).out).toBe('/usr/local/bin/sleep\n');
      // Its environment is an ordinary exec's: the lease's, without the SHLVL or PWD of the shell
      // that started it. (LXD tags each exec's processes with an ALACARTE_EXEC of its own.)
      const lines = (text: string, sep: string) =>
        text
          .split(sep)
          .filter((e) => e !== '' && !e.startsWith('ALACARTE_EXEC='))
          .sort();
      const ordinary = await driver.exec(handle, {
        command: ['env'],
        timeoutMs: 5000,
        maxOutputBytes: 10_000,
      });
      const env = lines(ordinary.stdout.toString(), '\n');
      const environ = lines((await sh(driver, handle, `cat /proc/${pid}/environ`)).out, '\0');
      expect(environ).toContain("MARK=it's");
      expect(environ).toEqual(env);
    });

    it('makes declared ports reachable from the host loopback, and only those', async () => {
      const handle = await start({ ports: [8080], command: ['httpd', '-f', '-p', '8080', '-h', '/etc'] });
      const url = handle.ports[8080];
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(Object.keys(handle.ports)).toEqual(['8080']);
      let body = '';
      await waitFor(async () => {
        try {
          const res = await fetch(`${url}/passwd`);
          body = await res.text();
          return res.ok;
        } catch {
          return false;
        }
      }, 5000);
      expect(body).toMatch(/^root:x:0:0:/);
    });

    it('reaches a declared port whose server listens on the IPv6 loopback only (::1), as IPv4 ones', async () => {
      // Node and Vite bind "localhost" to ::1: such servers were unreachable (the relay dialled 127.0.0.1).
      const handle = await start({
        ports: [8083, 8084],
        command: ['sh', '-c', 'httpd -p "[::1]:8083" -h /etc; exec httpd -f -p 127.0.0.1:8084 -h /etc'],
      });
      for (const port of [8083, 8084]) {
        let body = '';
        const up = await waitFor(async () => {
          const res = await fetch(`${handle.ports[port]}/passwd`).catch(() => undefined);
          body = res?.ok ? await res.text() : '';
          return body !== '';
        }, 10_000);
        expect(up, `port ${port}`).toBe(true);
        expect(body).toMatch(/^root:x:0:0:/);
      }
    });

    for (const end of ['halt', 'stop'] as const) {
      it(`an exec, a spawn and a terminal under way end at once when the sandbox is ${end === 'halt' ? 'halted (stopped without halt())' : 'stopped'}`, async () => {
        const handle = await start();
        // halt() is optional: a driver without it is stopped, as the lease service does.
        const ending = (end === 'halt' ? driver.halt : undefined)?.bind(driver) ?? driver.stop.bind(driver);
        const long = { timeoutMs: 120_000, maxOutputBytes: 1024 };
        // Answered whenever it ends: a rejection is kept, not thrown unhandled meanwhile.
        const exec = driver.exec(handle, { command: ['sleep', '100'], ...long }).then(
          (r) => ({ exitCode: r.exitCode }),
          (e: unknown) => ({ code: e instanceof AlacarteError ? e.code : String(e) }),
        );
        const proc = await driver.spawn(handle, { command: ['sleep', '101'] });
        proc.stdout.resume();
        proc.stderr.resume();
        const session = await driver.attach(handle, { cols: 80, rows: 24 });
        session.stream.resume();
        // All three running in the sandbox before it ends.
        expect(await untilRunning(driver, handle, 'sleep 10[01]$', 2)).toBe(true);
        await ending(handle);
        const within = <T>(p: Promise<T>) =>
          Promise.race([p, sleep(10_000).then(() => 'still waiting' as const)]);
        // The exec's caller learns that the lease's sandbox ended, not some exit status of its own.
        expect(await within(exec)).toEqual({ code: 'lease_not_running' });
        expect(await within(proc.exited)).not.toBe('still waiting');
        expect(await within(session.exited)).not.toBe('still waiting');
      });
    }

    it('stops idempotently and then refuses exec, attach and deadline moves', async () => {
      const handle = await start({ ports: [9000] });
      await Promise.all([driver.stop(handle), driver.stop(handle)]);
      await driver.stop(handle);
      await driver.stop({ leaseId: newLeaseId() });
      expect((await driver.list()).some((s) => s.leaseId === handle.leaseId)).toBe(false);
      await expectCode(sh(driver, handle, 'true'), 'lease_not_running');
      await expectCode(driver.attach(handle, { cols: 80, rows: 24 }), 'lease_not_running');
      await expectCode(driver.setDeadline(handle, new Date(Date.now() + 60_000)), 'lease_not_running');
      const port = Number(new URL(handle.ports[9000] ?? 'http://127.0.0.1:1').port);
      await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    });

    it('starts several sandboxes at once while list() runs alongside, each its own', async () => {
      const [a, b, c] = await Promise.all([start(), start(), start(), driver.list(), driver.list()]);
      const handles = [a, b, c] as SandboxHandle[];
      const seen = await Promise.all(handles.map((h) => sh(driver, h, 'cat /run/alacarte/lease.json')));
      expect(seen.map((r) => [r.code, r.err])).toEqual(handles.map(() => [0, '']));
      expect(seen.map((r) => JSON.parse(r.out).id)).toEqual(handles.map((h) => h.leaseId));
      const listed = (await driver.list()).map((s) => s.leaseId);
      for (const h of handles) expect(listed).toContain(h.leaseId);
    });

    it('reports capacity that shrinks while a sandbox runs', async () => {
      const before = await driver.capacity();
      const handle: SandboxHandle = await start();
      const during = await driver.capacity();
      expect(during.memoryMib).toBe(before.memoryMib - TEST_LIMITS.memoryMib);
      expect(during.sandboxes).toBe(before.sandboxes - 1);
      await driver.stop(handle);
      expect((await driver.capacity()).memoryMib).toBe(before.memoryMib);
    });
  });
}
