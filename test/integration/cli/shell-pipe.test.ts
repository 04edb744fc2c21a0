import { spawn } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, type ServedNode, serveNode, tempDir } from '../../helpers/cli.js';
import { runCli, runJson } from './run-cli.js';

/**
 * `alacarte shell ID < script`: every byte of the script is there at once, before the sandbox's
 * shell on its fresh terminal has set up its line editing (which may drop what came before). The
 * user expects what `ssh host < script` does: every line runs, once, in order, and the command
 * ends with the script's status. Nothing here holds input back: the product must. Runs the built
 * CLI (`npm run build`) against a real node with crun sandboxes.
 */
let node: ServedNode;
beforeAll(async () => {
  node = await serveNode({ dataDir: tempDir('shell-pipe-node') });
}, 120_000);
afterAll(async () => {
  await node?.stop();
});

/** Three lines whose output (not their echo on the terminal) says which ran, then an exit. */
const SCRIPT = 'echo first-$((0+1))\necho second-$((1+1))\necho third-$((1+2))\nexit 7\n';
const RAN = /(?:first-1|second-2|third-3)(?=\r*\n)/g;

/**
 * Runs `alacarte shell ID` with `script` on its stdin, all of it there at once: read from a file (as
 * `alacarte shell ID < script`) or written whole into a pipe that is then closed (as `cat script |
 * alacarte shell ID`). Killed after 90 s (code null), so a shell left waiting for input it lost
 * fails the test instead of hanging it.
 */
function shellWith(id: string, env: { home: string; url: string }, script: string, from: 'file' | 'pipe') {
  const file = join(env.home, 'script.sh');
  writeFileSync(file, script);
  const fd = from === 'file' ? openSync(file, 'r') : 'pipe';
  const child = spawn(process.execPath, [CLI, 'shell', id], {
    stdio: [fd, 'pipe', 'pipe'],
    env: { ...process.env, ALACARTE_HOME: env.home, ALACARTE_URL: env.url },
  });
  if (typeof fd === 'number') closeSync(fd);
  child.stdin?.end(script);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('alacarte shell with piped input', { timeout: 300_000 }, () => {
  it('runs every line of a script redirected from a file once, in order, and exits with its status', async () => {
    const me = { home: tempDir('shell-pipe-home'), url: node.url };
    await runJson(['wallet', 'topup', '100'], me);
    const lease = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '10m'], me);
    // Each session is a fresh shell on a fresh terminal: the race is at every start.
    for (let session = 0; session < 5; session++) {
      const r = await shellWith(lease.id, me, SCRIPT, 'file');
      expect({ ran: r.stdout.match(RAN), code: r.code }, r.stdout + r.stderr).toEqual({
        ran: ['first-1', 'second-2', 'third-3'],
        code: 7,
      });
      // The terminal shows the script's lines as typed (twice, when they arrive while the shell
      // runs a command: the terminal echoes them, then the shell's line editing shows them), and
      // no line the user did not send.
      const typed = new Set(r.stdout.match(/echo \S+/g));
      expect(typed).toEqual(new Set(['echo first-$((0+1))', 'echo second-$((1+1))', 'echo third-$((1+2))']));
    }
    await runCli(['stop', lease.id], me);
  });

  it('runs every line even when the shell start-up takes what reached the terminal early', async () => {
    // As a profile that queries the terminal does, the interactive shell's start-up file ($ENV)
    // reads whatever input is there a second after it starts; the shell's own line editing only
    // comes after. Input sent before the shell reads is lost here every time, not only under load.
    const me = { home: tempDir('shell-pipe-home'), url: node.url };
    await runJson(['wallet', 'topup', '100'], me);
    const rent = ['rent', '--offer', 'small', '--for', '10m', '--env', 'ENV=/root/.shrc'];
    const lease = await runJson<{ id: string }>(rent, me);
    const startup = await runCli(['exec', lease.id, '--', 'sh', '-c', 'cat > /root/.shrc'], me, {
      input: 'sleep 1\nwhile read -t 1 line; do :; done\n',
    });
    expect(startup.code).toBe(0);
    const r = await shellWith(lease.id, me, SCRIPT, 'file');
    expect({ ran: r.stdout.match(RAN), code: r.code }, r.stdout + r.stderr).toEqual({
      ran: ['first-1', 'second-2', 'third-3'],
      code: 7,
    });
    await runCli(['stop', lease.id], me);
  });

  it('says why when the node refuses a terminal, with exit code 1 rather than a silent 0', async () => {
    const me = { home: tempDir('shell-pipe-home'), url: node.url };
    await runJson(['wallet', 'topup', '100'], me);
    const lease = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '10m'], me);
    // Four shells hold the lease's four terminals, their input still open.
    const holders = [1, 2, 3, 4].map(() => {
      const child = spawn(process.execPath, [CLI, 'shell', lease.id], {
        env: { ...process.env, ALACARTE_HOME: me.home, ALACARTE_URL: me.url },
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
      });
      const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
      return { child, shown: () => out, closed };
    });
    try {
      // A prompt shows once the shell reads: its terminal is taken.
      for (const h of holders) await expect.poll(h.shown, { timeout: 90_000, interval: 100 }).toMatch(/# /);
      const refused = await runCli(['shell', lease.id], me, { input: 'echo never\n' });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('the node closed the terminal: at most 4 terminals at once per lease');
      expect(refused.stdout).not.toContain('never');
    } finally {
      // Their input ends: each shell ends as with Ctrl-D, status 0.
      for (const h of holders) h.child.stdin.end();
      expect(await Promise.all(holders.map((h) => h.closed))).toEqual([0, 0, 0, 0]);
    }
    await runCli(['stop', lease.id], me);
  });

  it('runs a script written into a pipe at once, ends it at the end of input with the status of its last line', async () => {
    const me = { home: tempDir('shell-pipe-home'), url: node.url };
    await runJson(['wallet', 'topup', '100'], me);
    const lease = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '10m'], me);
    const noExit = SCRIPT.replace('exit 7\n', '');
    // No exit: the end of input ends the shell. The last line may lack its newline; it still runs.
    const sessions = [
      { script: noExit, code: 0 },
      { script: `${noExit}false`, code: 1 },
      { script: noExit, code: 0 },
      { script: `${noExit}true`, code: 0 },
      { script: `${noExit}false\n`, code: 1 },
    ];
    for (const { script, code } of sessions) {
      const r = await shellWith(lease.id, me, script, 'pipe');
      expect({ ran: r.stdout.match(RAN), code: r.code }, r.stdout + r.stderr).toEqual({
        ran: ['first-1', 'second-2', 'third-3'],
        code,
      });
    }
    await runCli(['stop', lease.id], me);
  });
});
