import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AttachSession, TerminalSize } from '../compute-driver.js';
import { runProcess, signalNumber } from './run-process.js';

export interface AttachTarget {
  runtime: string;
  stateDir: string;
  containerId: string;
  pidFile: string;
  env: string[];
  busybox: string;
  /** `script` from util-linux. */
  script: string;
  shell: string;
}

/** The data segment `script` may use, in KiB: what it queues for a shell that does not read. */
const RELAY_DATA_KIB = 16 * 1024;

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

export function validSize(size: TerminalSize): boolean {
  const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= 1000;
  return ok(size.cols) && ok(size.rows);
}

/**
 * An interactive shell on a terminal that belongs to the sandbox: `crun exec -t` allocates a pty in
 * the sandbox's own devpts (so `tty` inside names /dev/pts/N) and relays it to its stdin/stdout, which
 * must themselves be a terminal; `script` provides that outer terminal and talks to us through pipes.
 * The outer terminal is set raw, so bytes pass unchanged and only the inner one does line discipline.
 * Resizing sets the inner terminal's size from the host through /proc/<pid>/fd/0 of the shell, which
 * makes the kernel send SIGWINCH to the foreground program inside.
 */
export async function attachInSandbox(target: AttachTarget, size: TerminalSize): Promise<AttachSession> {
  const runtimeCmd = [
    target.runtime,
    '--root',
    target.stateDir,
    'exec',
    '-t',
    '--pid-file',
    target.pidFile,
    ...target.env.flatMap((e) => ['--env', e]),
    target.containerId,
    target.shell,
  ]
    .map(quote)
    .join(' ');
  // `script` queues in its own memory, without bound, whatever the shell does not read yet: its
  // data segment is capped (past it, it ends the session) and the shell it starts gets the
  // sandbox's usual limits back before the runtime runs.
  const inner = `ulimit -S -d unlimited && ${quote(target.busybox)} stty raw -echo && exec ${runtimeCmd}`;
  const child = spawn(
    target.busybox,
    [
      'sh',
      '-c',
      `ulimit -S -d ${RELAY_DATA_KIB} && exec "$0" "$@"`,
      target.script,
      '-qfec',
      inner,
      '/dev/null',
    ],
    { stdio: ['pipe', 'pipe', 'ignore'] },
  );
  child.stdin.on('error', () => {});
  const exited = new Promise<number>((resolve) => {
    child.on('close', (code, signal) => {
      rmSync(target.pidFile, { force: true });
      resolve(code ?? 128 + signalNumber(signal));
    });
    child.on('error', () => resolve(255));
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });

  const shellPid = async (): Promise<number | undefined> => {
    for (let i = 0; i < 500 && !done; i++) {
      try {
        const pid = Number.parseInt(readFileSync(target.pidFile, 'utf8'), 10);
        if (pid > 1) return pid;
      } catch {
        // not written yet
      }
      await sleep(10);
    }
    return undefined;
  };
  const pid = await shellPid();

  const resize = async (s: TerminalSize): Promise<void> => {
    if (!validSize(s)) throw new RangeError('terminal size must be whole numbers from 1 to 1000');
    if (pid === undefined || done) return;
    const r = await runProcess(target.busybox, [
      'stty',
      '-F',
      `/proc/${pid}/fd/0`,
      'rows',
      String(s.rows),
      'cols',
      String(s.cols),
    ]);
    if (r.code !== 0 && !done) throw new Error(`resize failed: ${r.stderr.trim()}`);
  };
  await resize(size);

  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  stream.on('error', () => {});
  return {
    stream,
    resize,
    exited,
    close: () => {
      if (pid !== undefined && !done) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      child.kill('SIGKILL');
    },
  };
}
