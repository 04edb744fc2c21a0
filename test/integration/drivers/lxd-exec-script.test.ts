import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { execCommand, IN_INSTANCE } from '../../../src/drivers/lxd/in-instance.js';
import { waitFor } from './compute-driver.contract.js';

/**
 * The LXD exec wrapper (in-instance.ts, execCommand with relayOutput) run on the host with the
 * host's busybox in place of /run/alacarte/bin/busybox and FIFOs in a temporary directory instead of
 * /dev: its pipes are then the test's own, so a reader that pauses, which no LXD test can arrange,
 * is tried here. The wrapper's stdout and stderr stand for LXD's pipes.
 */
const skipReason = !existsSync('/bin/busybox')
  ? 'no /bin/busybox (scripts/setup.sh installs busybox-static)'
  : undefined;

const dir = mkdtempSync(join(tmpdir(), 'alacarte-lxd-exec-'));
afterAll(() => {
  // The jobs these cases start, should a case fail before it ends its own.
  spawnSync('pkill', ['-f', '^(sleep 30[78]|yes spam309)$']);
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  out: Buffer;
  err: string;
}

/** Runs `command` under the relaying wrapper; `pauseMs`: stdout is not read for that long. */
function run(
  command: string[],
  options: { stdin?: string; pauseMs?: number; env?: Record<string, string>; cwd?: string } = {},
): Promise<Run> {
  const argv = execCommand({ PATH: '/usr/bin:/bin', ...options.env }, command, true, options.cwd).map((a) =>
    a.replaceAll(IN_INSTANCE.busybox, '/bin/busybox').replaceAll('/dev/.alacarte-exec', join(dir, 'exec')),
  );
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const read = () => child.stdout.on('data', (b: Buffer) => out.push(b)).resume();
  if (options.pauseMs) {
    child.stdout.pause();
    setTimeout(read, options.pauseMs);
  } else read();
  child.stdin.end(options.stdin ?? '');
  const closed = (s: NodeJS.ReadableStream) => new Promise((r) => s.once('close', r));
  return Promise.all([
    new Promise<number | null>((r) => child.once('exit', (code) => r(code))),
    closed(child.stdout),
    closed(child.stderr),
  ]).then(([code]) => ({ code, out: Buffer.concat(out), err: Buffer.concat(err).toString() }));
}

/** Whether a process whose command line contains `text` runs on the host. */
async function hostHas(text: string): Promise<boolean> {
  const r = await run(['sh', '-c', `ps -eo args | grep -c -F -- "${text}" | grep -qv '^0$'`]);
  return r.code === 0;
}

describe.skipIf(skipReason)('LXD exec wrapper with output relays, on the host busybox', () => {
  it('passes stdin, keeps stdout and stderr apart and exits with the command status', async () => {
    const r = await run(['sh', '-c', 'cat; echo oops >&2; exit 3'], { stdin: 'hello' });
    expect(r).toEqual({ code: 3, out: Buffer.from('hello'), err: 'oops\n' });
    expect((await run(['no-such-command-x'])).code).toBe(127);
  });

  it('runs the command in the working directory given, and fails with 126 where it cannot enter it', async () => {
    expect(await run(['pwd'], { cwd: dir })).toEqual({ code: 0, out: Buffer.from(`${dir}\n`), err: '' });
    const missing = await run(['pwd'], { cwd: join(dir, 'not-there') });
    expect(missing.code).toBe(126);
    expect(missing.out.toString()).toBe('');
    expect(missing.err).toContain('not-there');
  });

  it('gives 128+n for a command killed by signal n, and no message of the shell', async () => {
    const r = await run(['sh', '-c', 'echo before; kill -9 $$']);
    expect(r).toEqual({ code: 137, out: Buffer.from('before\n'), err: '' });
  });

  it('returns when the command exits while a job it started keeps writing, never killed by SIGPIPE', async () => {
    const marker = join(dir, 'still-writing');
    const r = await run([
      'sh',
      '-c',
      `(sleep 0.5; i=0; while [ $i -lt 2000 ]; do echo late; echo late >&2; i=$((i+1)); done; touch ${marker}; sleep 307) & echo started`,
    ]);
    expect(r.code).toBe(0);
    expect(r.out.toString()).toBe('started\n');
    // The job wrote far more than a pipe holds after the exec was over, and lived on.
    expect(await waitFor(() => existsSync(marker), 10_000)).toBe(true);
    expect(await hostHas('sleep 307')).toBe(true);
    await run(['sh', '-c', 'pkill -f "^sleep 307$"; true']);
  });

  it('returns everything the command wrote to a reader that pauses, while a job holds the output', async () => {
    // Nobody reads for a while: the relay waits on a full pipe, which is not the end of the output.
    const r = await run(['sh', '-c', 'sleep 308 & head -c 3000000 /dev/zero | tr "\\0" y'], {
      pauseMs: 1000,
    });
    expect(r.code).toBe(0);
    expect(r.out.length).toBe(3_000_000);
    expect(r.out.every((b) => b === 0x79)).toBe(true);
    await run(['sh', '-c', 'pkill -f "^sleep 308$"; true']);
  });

  it('returns when a job writes without pause, and that job keeps running', async () => {
    const r = await run(['sh', '-c', 'yes spam309 & echo started']);
    expect(r.code).toBe(0);
    expect(r.out.toString()).toContain('started\n');
    await sleep(300);
    expect(await hostHas('yes spam309')).toBe(true);
    await run(['sh', '-c', 'pkill -f "yes spam309"; true']);
  });

  it('leaves no FIFO behind', async () => {
    await run(['true']);
    const left = await run(['sh', '-c', `ls -a ${dir}`]);
    expect(
      left.out
        .toString()
        .split('\n')
        .filter((n) => n.startsWith('exec')),
    ).toEqual([]);
  });
});
