import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { runProcess } from '../../helpers/run-process.js';

/**
 * What a job started over SSH does once its command returns, as with sshd, whatever driver runs
 * the lease (crun: ssh.test.ts, LXD: lxd-ssh.test.ts): the client gets the prompt back, the job
 * keeps running, and a client gone mid-command hangs up the command alone.
 */
export interface SshBackgroundTarget {
  /** The stock client's arguments running `command` in the test's lease. */
  sshArgs: (command: string) => string[];
  /** Runs `script` in the lease through its exec route (not SSH); its stdout. */
  inside: (script: string) => Promise<string>;
}

/** Registers the cases in the calling describe; `target` is read when they run (after beforeAll). */
export function sshBackgroundCases(target: () => SshBackgroundTarget, timeoutMs: number): void {
  const ssh = (command: string) => runProcess('ssh', target().sshArgs(command), { timeoutMs: 40_000 });
  const inside = (script: string) => target().inside(script);

  it(
    'leaves a server started with nohup or setsid running after the command returns, as sshd does',
    async () => {
      // The busybox image has no nohup: what coreutils' does, ignore SIGHUP and run the command.
      await inside(`printf '%s\n' '#!/bin/sh' 'trap "" HUP' 'exec "$@"' >/bin/nohup && chmod 755 /bin/nohup`);
      // The usual ways to start a server on a rented box; closing the channel killed them.
      for (const [start, port] of [
        ['nohup sh -c "sleep 1; httpd -f -p 8081 -h /etc" >/dev/null 2>&1 &', 8081],
        ['setsid httpd -f -p 8082 -h /etc </dev/null >/dev/null 2>&1 &', 8082],
      ] as const) {
        const r = await ssh(start);
        expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
        // The server answers afterwards, through the lease's exec.
        let page = '';
        for (let i = 0; i < 40 && !page.includes('root:'); i++) {
          await new Promise((done) => setTimeout(done, 500));
          page = await inside(`wget -qO- http://127.0.0.1:${port}/passwd || true`);
        }
        // On failure, say whether the server died or did not answer.
        const seen = page.includes('root:') ? '' : await inside('ps -o pid,args; netstat -ltn');
        expect(page, seen).toContain('root:');
        await inside(`pkill -f "^httpd -f -p ${port}"`);
      }
    },
    timeoutMs,
  );

  it(
    'returns at the command exit while a job it started keeps writing to the channel',
    async () => {
      // The job holds the channel's stdout and stderr for ever: the client must not wait for it.
      const r = await ssh(
        'sh -c "while :; do echo tick; echo tock >&2; sleep 0.1; done" & echo started; exit 6',
      );
      expect(r.code).toBe(6);
      expect(r.stdout).toMatch(/(^|\n)started\n/);
      // The job still runs, its later output dropped.
      await new Promise((done) => setTimeout(done, 1000));
      expect(await inside('ps -o args | grep -c "^sh -c while :; do echo tick"')).toBe('1\n');
      await inside('pkill -f "^sh -c while :; do echo tick"');
    },
    timeoutMs,
  );

  it(
    'hangs up a command whose client went away, and leaves what it started running',
    async () => {
      const child = spawn('ssh', target().sshArgs('sleep 601 & echo up; exec sleep 602'));
      child.stdin.end();
      child.stderr.resume();
      await new Promise<void>((up) => child.stdout.once('data', () => up()));
      child.kill('SIGKILL');
      // sshd SIGHUPs nothing it started: `sleep 602` goes (SIGHUP here), `sleep 601` stays.
      let left = '';
      for (let i = 0; i < 40; i++) {
        left = await inside('ps -o args | grep "^sleep 60[12]" || true');
        if (!left.includes('sleep 602')) break;
        await new Promise((done) => setTimeout(done, 250));
      }
      expect(left).toBe('sleep 601\n');
      await inside('pkill -f "^sleep 601"');
    },
    timeoutMs,
  );
}
