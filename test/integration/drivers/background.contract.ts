import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxHandle } from '../../../src/drivers/compute-driver.js';
import { type ContractTarget, newLeaseId, sh, TEST_LIMITS, waitFor } from './compute-driver.contract.js';

/** Processes whose command line starts with `prefix` (or matches it), as `ps` inside the sandbox shows them. */
async function running(t: ContractTarget, h: SandboxHandle, prefix: string | RegExp): Promise<string[]> {
  const ps = await sh(t.driver, h, 'ps -o pid,args');
  const match = (args: string) => (typeof prefix === 'string' ? args.startsWith(prefix) : prefix.test(args));
  return ps.out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => match(l.replace(/^\d+\s+/, '')));
}

/** Kills (SIGKILL) the processes whose command line starts with `prefix` (not every image has pkill). */
async function killAll(t: ContractTarget, h: SandboxHandle, prefix: string | RegExp): Promise<void> {
  const pids = (await running(t, h, prefix)).map((l) => l.split(/\s+/)[0]);
  if (pids.length > 0) await sh(t.driver, h, `kill -9 ${pids.join(' ')} 2>/dev/null; true`);
}

/** How many processes run in the sandbox, the `ps` that counts them excluded. */
async function processCount(t: ContractTarget, h: SandboxHandle): Promise<number> {
  const ps = await sh(t.driver, h, 'ps -o pid,args');
  return ps.out.split('\n').filter((l) => /^\s*\d+\s/.test(l) && !/\bps -o pid,args\b/.test(l)).length;
}

/** `command` started with `background: true`, as POST …/exec with it does. */
function inBackground(t: ContractTarget, h: SandboxHandle, command: string[]) {
  return t.driver.exec(h, { command, timeoutMs: 5000, maxOutputBytes: 1000, background: true });
}

/**
 * What a background job sees of the exec that started it, the same on every ComputeDriver: the exec
 * returns when its command exits, with all the command wrote, while the job keeps running and
 * writing (never killed by SIGPIPE for a reader that went away); a timeout still kills it.
 */
export function backgroundJobsContract(name: string, makeTarget: () => Promise<ContractTarget>): void {
  describe(`background jobs: ${name}`, () => {
    let t: ContractTarget;
    let h: SandboxHandle;

    beforeAll(async () => {
      t = await makeTarget();
      h = await t.driver.start(
        { leaseId: newLeaseId(), image: 'busybox' },
        { ...TEST_LIMITS, pids: 128 },
        new Date(Date.now() + 300_000),
      );
    });
    afterAll(async () => {
      await t?.dispose();
    });

    it('a job that keeps writing to the output of the exec that started it outlives that exec', async () => {
      // Both write to the exec's stdout after it has returned: closing that pipe killed them (SIGPIPE).
      const r = await sh(
        t.driver,
        h,
        'sh -c "while :; do echo tick; sleep 0.2; done" & setsid sh -c "while :; do echo tock >&2; sleep 0.2; done" & echo started',
      );
      // The first tick may come before "started": the job starts first.
      expect(r.out).toMatch(/^(tick\n)*started\n/);
      await sleep(2000);
      expect(await running(t, h, 'sh -c while :; do echo tick')).toHaveLength(1);
      expect(await running(t, h, 'sh -c while :; do echo tock')).toHaveLength(1);
      await killAll(t, h, 'sh -c while :; do echo t');
    });

    it('an exec whose job holds its output returns everything the command wrote, byte for byte', async () => {
      // A megabyte written after the job started: the exec must not end before it is all through.
      const r = await t.driver.exec(h, {
        command: ['sh', '-c', 'sleep 555 & head -c 1000000 /dev/zero | tr "\\0" x; echo; echo end >&2'],
        timeoutMs: 20_000,
        maxOutputBytes: 2_000_000,
      });
      expect(r.exitCode).toBe(0);
      expect(r.timedOut).toBe(false);
      expect(r.stdout.length).toBe(1_000_001);
      expect(createHash('sha256').update(r.stdout).digest('hex')).toBe(
        createHash('sha256')
          .update(`${'x'.repeat(1_000_000)}\n`)
          .digest('hex'),
      );
      expect(r.stderr.toString()).toBe('end\n');
      expect(await running(t, h, 'sleep 555')).toHaveLength(1);
      await killAll(t, h, 'sleep 555');
    });

    it('an exec whose job writes without pause still returns when its command exits', async () => {
      const r = await t.driver.exec(h, {
        command: ['sh', '-c', 'yes spam & echo started'],
        timeoutMs: 20_000,
        maxOutputBytes: 1 << 20,
      });
      expect(r.timedOut).toBe(false);
      expect(r.exitCode).toBe(0);
      expect(r.stdout.toString()).toContain('started\n');
      // busybox runs its yes applet without an exec: ps shows it as `{yes} sh -c ...`.
      const yes = /^\{yes\} \S*sh -c yes spam/;
      expect(await running(t, h, yes)).toHaveLength(1);
      await killAll(t, h, yes);
    });

    it('leaves nothing running once the job that held its output has ended', async () => {
      const before = await processCount(t, h);
      await sh(t.driver, h, 'sh -c "while :; do echo tick; sleep 0.1; done" & echo started');
      // At least: a fork of it may show its command line too for a moment.
      expect((await running(t, h, 'sh -c while :; do echo tick')).length).toBeGreaterThan(0);
      await killAll(t, h, 'sh -c while :; do echo tick');
      expect(await waitFor(async () => (await processCount(t, h)) === before, 5000)).toBe(true);
    });

    it('a spawned process reports its exit while its job holds the output, with all it wrote first', async () => {
      // An SSH command such as `server & echo started`: the session ends when the command does.
      const proc = await t.driver.spawn(h, {
        command: [
          'sh',
          '-c',
          'sleep 556 & head -c 1000000 /dev/zero | tr "\\0" x; echo; echo end >&2; exit 3',
        ],
      });
      proc.stdin.end();
      // Nobody reads for a while: what the command wrote waits for its reader, it is not cut off.
      await sleep(1000);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      proc.stdout.on('data', (b: Buffer) => out.push(b));
      proc.stderr.on('data', (b: Buffer) => err.push(b));
      // Before the fix on LXD this waited for the job (556 s), past the case's timeout.
      expect(await proc.exited).toBe(3);
      const stdout = Buffer.concat(out);
      expect(stdout.length).toBe(1_000_001);
      expect(createHash('sha256').update(stdout).digest('hex')).toBe(
        createHash('sha256')
          .update(`${'x'.repeat(1_000_000)}\n`)
          .digest('hex'),
      );
      expect(Buffer.concat(err).toString()).toBe('end\n');
      // The job was left running, as after an exec.
      expect(await running(t, h, 'sleep 556')).toHaveLength(1);
      await killAll(t, h, 'sleep 556');
    });

    it('a spawned process reports its exit while its jobs keep writing, and they keep running', async () => {
      // `ssh box 'logger-loop &'`: the job writes to the output it inherited for ever, one slowly,
      // one without pause; the command's own last line must still come, and its exit.
      const proc = await t.driver.spawn(h, {
        command: [
          'sh',
          '-c',
          'sh -c "while :; do echo tick; sleep 0.05; done" & sh -c "while :; do echo tock >&2; done" & echo last; exit 4',
        ],
      });
      proc.stdin.end();
      let out = '';
      proc.stdout.on('data', (b: Buffer) => {
        out += b.toString();
      });
      proc.stderr.resume();
      // It hung here (crun) for as long as the jobs wrote.
      expect(await proc.exited).toBe(4);
      expect(out).toMatch(/(^|\n)last\n/);
      await sleep(1000);
      // Their output is drained, not closed: no SIGPIPE ended them.
      expect(await running(t, h, 'sh -c while :; do echo tick')).toHaveLength(1);
      expect(await running(t, h, 'sh -c while :; do echo tock')).toHaveLength(1);
      await killAll(t, h, 'sh -c while :; do echo t');
    });

    it('hangup() signals the command alone: a job it started keeps running', async () => {
      // An SSH client that went away mid-command: sshd does not kill what the command started.
      const proc = await t.driver.spawn(h, {
        command: [
          'sh',
          '-c',
          'setsid sleep 557 </dev/null >/dev/null 2>&1 & sleep 558 & echo up; exec sleep 559',
        ],
      });
      let out = '';
      proc.stdout.on('data', (b: Buffer) => {
        out += b.toString();
      });
      proc.stderr.resume();
      expect(
        await waitFor(
          async () => out.includes('up\n') && (await running(t, h, 'sleep 559')).length === 1,
          10_000,
        ),
      ).toBe(true);
      proc.hangup();
      // SIGHUP ends `sleep 559` (the command's own process), so the spawn ends.
      expect(await proc.exited).toBe(129);
      expect(await running(t, h, 'sleep 559')).toEqual([]);
      expect(await running(t, h, 'sleep 557')).toHaveLength(1);
      expect(await running(t, h, 'sleep 558')).toHaveLength(1);
      await killAll(t, h, /^sleep 55[78]/);
    });

    it('background: true returns at once with the pid of a command that keeps running', async () => {
      const r = await t.driver.exec(h, {
        command: ['sh', '-c', 'echo not shown; exec sleep 333'],
        timeoutMs: 5000,
        maxOutputBytes: 1000,
        background: true,
      });
      expect(r.exitCode).toBe(0);
      expect(r.stdout.length).toBe(0);
      expect(r.pid).toBeGreaterThan(1);
      await sleep(1000);
      // Its own command line, under the pid the answer gave.
      expect(await running(t, h, 'sleep 333')).toEqual([`${r.pid} sleep 333`]);
    });

    it('background: true of a command that does not exist says so, without a pid', async () => {
      const r = await t.driver.exec(h, {
        command: ['no-such-program', '--flag'],
        timeoutMs: 5000,
        maxOutputBytes: 1000,
        background: true,
      });
      expect(r.pid).toBeUndefined();
      expect(r.exitCode).toBe(127);
      expect(r.stderr.toString()).toContain('no-such-program: not found');
    });

    it("background: true runs the image's program found in PATH, not a busybox applet of that name", async () => {
      // The busybox image's `sleep` is busybox's applet; a program of that name earlier in PATH is
      // what an ordinary exec runs, and so must the background one (it ran the applet).
      await sh(
        t.driver,
        h,
        'mkdir -p /usr/local/bin && printf \'#!/bin/sh\\necho ran > /tmp/bg-marker\\nexec /bin/sleep "$@"\\n\' > /usr/local/bin/sleep && chmod 755 /usr/local/bin/sleep && rm -f /tmp/bg-marker',
      );
      try {
        const r = await inBackground(t, h, ['sleep', '334']);
        expect(r.exitCode).toBe(0);
        expect(r.pid).toBeGreaterThan(1);
        expect(
          await waitFor(async () => (await sh(t.driver, h, 'cat /tmp/bg-marker')).out === 'ran\n', 5000),
        ).toBe(true);
        expect(await running(t, h, '/bin/sleep 334')).toEqual([`${r.pid} /bin/sleep 334`]);
      } finally {
        await sh(t.driver, h, 'rm -f /usr/local/bin/sleep /tmp/bg-marker');
        await killAll(t, h, '/bin/sleep 334');
      }
    });

    it('background: true refuses what an ordinary exec cannot run: builtins 127, non-executables 126', async () => {
      const bg = (command: string[]) => inBackground(t, h, command);
      for (const builtin of [
        ['exit', '3'],
        ['cd', '/'],
      ]) {
        const r = await bg(builtin);
        expect(r.pid).toBeUndefined();
        expect(r.exitCode).toBe(127);
        expect(r.stderr.toString()).toContain(`${builtin[0]}: not found`);
      }
      for (const path of ['/etc/passwd', '/root']) {
        const r = await bg([path]);
        expect(r.pid).toBeUndefined();
        expect(r.exitCode).toBe(126);
        expect(r.stderr.toString()).toContain(`${path}: cannot execute`);
      }
      expect((await bg(['/no/such/program'])).exitCode).toBe(127);
    });

    it('background: true gives the job exactly the environment an ordinary exec gets', async () => {
      const env = (
        await t.driver.exec(h, { command: ['env'], timeoutMs: 5000, maxOutputBytes: 10_000 })
      ).stdout
        .toString()
        .split('\n')
        .filter(Boolean)
        .sort();
      const r = await inBackground(t, h, ['sleep', '335']);
      expect(r.pid).toBeGreaterThan(1);
      try {
        const environ = (
          await t.driver.exec(h, {
            command: ['cat', `/proc/${r.pid}/environ`],
            timeoutMs: 5000,
            maxOutputBytes: 10_000,
          })
        ).stdout
          .toString()
          .split('\0')
          .filter(Boolean)
          .sort();
        // No SHLVL or PWD of the launcher's shell added. (LXD tags each exec's processes with an
        // ALACARTE_EXEC of its own, the job its launcher's: the name is compared, not the tag.)
        const untagged = (list: string[]) => list.map((e) => e.replace(/^(ALACARTE_EXEC=).*/, '$1'));
        expect(untagged(environ)).toEqual(untagged(env));
      } finally {
        await killAll(t, h, 'sleep 335');
      }
    });

    it('an exec that times out still kills every process it started, writers included', async () => {
      const r = await t.driver.exec(h, {
        command: ['sh', '-c', 'sh -c "while :; do echo w; sleep 0.1; done" & sleep 444 & sleep 444'],
        timeoutMs: 500,
        maxOutputBytes: 100,
      });
      expect(r.timedOut).toBe(true);
      await sleep(500);
      expect(await running(t, h, 'sleep 444')).toEqual([]);
      expect(await running(t, h, 'sh -c while :; do echo w')).toEqual([]);
    });
  });
}
