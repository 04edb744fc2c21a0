import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { Duplex, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AttachSession, ExecResult, TerminalSize } from '../compute-driver.js';
import { IN_SANDBOX } from './oci-spec.js';
import { inCgroup } from './process-tree.js';
import { signalNumber } from './run-process.js';

export interface AttachTarget {
  runtime: string;
  stateDir: string;
  containerId: string;
  pidFile: string;
  env: string[];
  /** Working directory of the shell (the image's); / when absent. */
  cwd?: string;
  busybox: string;
  /** `script` from util-linux. */
  script: string;
  /** What runs on the terminal: a login shell, or a command (`ssh -t host -- top`). */
  command: string[];
  /** The sandbox's cgroup.procs: a pid read from the pid file is acted on only while it is in there. */
  procsFile: string;
  /** Runs a command of ours inside the sandbox, as its root, with a timeout (used for resizing). */
  execInside: (command: string[], timeoutMs: number) => Promise<ExecResult>;
}

/** The data segment `script` may use, in KiB: what it queues for a shell that does not read. */
const RELAY_DATA_KIB = 16 * 1024;

export function validSize(size: TerminalSize): boolean {
  const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= 1000;
  return ok(size.cols) && ok(size.rows);
}

/** How long a resize may take inside the sandbox before it is given up (and killed there). */
const RESIZE_TIMEOUT_MS = 5000;

/**
 * An interactive shell on a terminal that belongs to the sandbox: `crun exec -t` allocates a pty in
 * the sandbox's own devpts (so `tty` inside names /dev/pts/N) and relays it to its stdin/stdout, which
 * must themselves be a terminal; `script` provides that outer terminal and talks to us through pipes.
 * The outer terminal is set raw, so bytes pass unchanged and only the inner one does line discipline.
 *
 * Nothing of the tenant's is interpreted on the host: `script` runs its command with a root shell,
 * so the runtime's arguments (which hold the lease's environment) reach that shell as environment
 * variables it only expands, never as code. The first size is set on the outer terminal (ours),
 * which crun copies to the inner one. Later resizes run busybox `stty` inside the sandbox, as its
 * root, on the shell's fd 0 (/proc/<pid in the sandbox>/fd/0): whatever the tenant put there
 * (a FIFO, /dev/tty, another file) is opened by the tenant's own process, never by host root.
 */
export async function attachInSandbox(target: AttachTarget, size: TerminalSize): Promise<AttachSession> {
  if (!validSize(size)) throw new RangeError('terminal size must be whole numbers from 1 to 1000');
  const runtimeArgs = [
    target.runtime,
    '--root',
    target.stateDir,
    'exec',
    '-t',
    // What the sandbox's config gives its init (the runtime's exec leaves it out).
    '--no-new-privs',
    '--pid-file',
    target.pidFile,
    ...target.env.flatMap((e) => ['--env', e]),
    ...(target.cwd === undefined ? [] : ['--cwd', target.cwd]),
    target.containerId,
    ...target.command,
  ];
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    SHELL: '/bin/sh',
    ALACARTE_BUSYBOX: target.busybox,
  };
  runtimeArgs.forEach((a, i) => {
    env[`ALACARTE_A${i}`] = a;
  });
  // Sizes are validated whole numbers; everything else is a variable reference. `script` queues in
  // its own memory, without bound, whatever the shell does not read yet: its data segment is capped
  // (past it, it ends the session) and the shell it starts gets the usual limits back before the
  // runtime runs.
  const inner = `ulimit -S -d unlimited && "$ALACARTE_BUSYBOX" stty raw -echo rows ${size.rows} cols ${size.cols} && exec ${runtimeArgs
    .map((_, i) => `"$ALACARTE_A${i}"`)
    .join(' ')}`;
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
    { stdio: ['pipe', 'pipe', 'ignore'], env },
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

  /** The shell's pid inside the sandbox (the last NSpid field), while it is the sandbox's process. */
  const shellNsPid = (): number | undefined => {
    if (pid === undefined || !inCgroup(pid, target.procsFile)) return undefined;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const ns = Number.parseInt(/^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).at(-1) ?? '', 10);
      return ns > 0 ? ns : undefined;
    } catch {
      return undefined;
    }
  };
  let nsPid: number | undefined;

  const apply = async (s: TerminalSize): Promise<void> => {
    nsPid ??= shellNsPid();
    if (nsPid === undefined) return;
    const r = await target.execInside(
      [
        IN_SANDBOX.busybox,
        'stty',
        '-F',
        `/proc/${nsPid}/fd/0`,
        'rows',
        String(s.rows),
        'cols',
        String(s.cols),
      ],
      RESIZE_TIMEOUT_MS,
    );
    if (r.exitCode !== 0 && !done) throw new Error(`resize failed: ${r.stderr.toString('utf8').trim()}`);
  };
  // One resize at a time per session, the latest size winning: a client sending many costs at most
  // one process in the sandbox at any moment.
  let pending: TerminalSize | undefined;
  let running: Promise<void> | undefined;
  const resize = (s: TerminalSize): Promise<void> => {
    if (!validSize(s))
      return Promise.reject(new RangeError('terminal size must be whole numbers from 1 to 1000'));
    if (done) return Promise.resolve();
    pending = s;
    running ??= (async () => {
      try {
        while (pending && !done) {
          const next = pending;
          pending = undefined;
          await apply(next);
        }
      } finally {
        pending = undefined;
        running = undefined;
      }
    })();
    return running;
  };

  const stream = Duplex.from({ readable: child.stdout, writable: afterResizes(child.stdin, () => running) });
  stream.on('error', () => {});
  return {
    stream,
    resize,
    exited,
    close: () => {
      // Only while it is still the sandbox's: after the shell exits its pid may be anyone's.
      if (pid !== undefined && !done && inCgroup(pid, target.procsFile)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      child.kill('SIGKILL');
      // Output nobody will read: a paused stream would never reach its end, and `exited` (which
      // waits for it) would never resolve, keeping the lease's terminal slot taken.
      child.stdout.destroy();
    },
  };
}

/**
 * The shell's input, held back while a resize is being applied: a resize takes a `crun exec`, and
 * what a client types after resizing (`stty size`, a full-screen program) must see the new size.
 * Back-pressure passes through: a write completes when the shell's input has taken it.
 */
function afterResizes(input: NodeJS.WritableStream, inFlight: () => Promise<void> | undefined): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const forward = () => {
        if (input.write(chunk)) return callback();
        const done = () => {
          input.off('drain', done);
          input.off('close', done);
          callback();
        };
        input.on('drain', done);
        input.on('close', done);
      };
      const pending = inFlight();
      if (pending) pending.then(forward, forward);
      else forward();
    },
    final(callback) {
      const pending = inFlight();
      const end = () => {
        input.end();
        callback();
      };
      if (pending) pending.then(end, end);
      else end();
    },
  });
}
