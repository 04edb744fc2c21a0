import {
  accessSync,
  closeSync,
  constants,
  fstatSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statfsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AnswerLines } from './answer-lines.js';
import { FifoStock } from './fifo-stock.js';
import type { ProcessResult } from './run-process.js';
import { StandingChild } from './standing-child.js';

/** Calls under way at once; more wait their turn (the shell runs each in the background). */
const MAX_RUNNING = 64;

/**
 * Longest a host program run by run() may take (a runtime call into a wedged sandbox, an unmount
 * that hangs): it is then killed (SIGKILL, from here: busybox `timeout` would leave a watcher
 * process for init to reap) and answers 137, so that hung calls cannot hold every one of the
 * MAX_RUNNING places for ever. Exec (runPiped) has its own time limit, enforced by its caller.
 */
const MAX_SECONDS = 600;

/**
 * Written after every call: `jobs` makes busybox ash reap its finished background jobs (waitpid)
 * and free them from its job table. Without it ash reaps only while it waits for a foreground job,
 * which the spawner never runs: every call stayed a zombie, and about 5,000 leases (6 calls each)
 * filled the host's pid space (review 5, finding 1).
 */
const REAP = 'jobs >/dev/null\n';

interface Call {
  n: number;
  resolve: (result: ProcessResult) => void;
  reject: (err: Error) => void;
  maxOutput: number;
  /** No output files: the program's stdio went to /dev/null or to paths the caller gave. */
  detached: boolean;
  /** Told the program's host pid as soon as it has started. */
  onPid?: (pid: number) => void;
  /** run(): kills the program once it has taken maxSeconds. */
  timer?: NodeJS.Timeout;
}

/** Where runPiped connects a program's standard streams: paths (FIFOs, files), stdin absent = /dev/null. */
export interface PipedIo {
  stdin?: string;
  stdout: string;
  stderr: string;
}

/**
 * Runs host programs through one long-lived static busybox shell instead of spawning them from
 * Node. spawn() forks the node process on its own thread (libuv, synchronously): with the page
 * tables of a large process that holds the event loop for 2 to 15 ms per child, which under load
 * was a third of the node's thread per lease (bench/RESULTS.md, issue 13). The shell is small, so
 * its fork costs microseconds, and it forks on its own CPU time.
 *
 * Protocol: one command per line on the shell's stdin, run in the background with stdin from
 * /dev/null and stdout, stderr into files of a private temporary directory; the shell answers
 * `<n> <exit status>` on its stdout (one write, atomic on a pipe) once the program has exited.
 * Arguments are single-quoted, so no word of them is interpreted. Output is read up to a cap, then
 * the files are removed. Should the shell die, its calls under way and waiting fail and the next
 * call starts a new shell (standing-child.ts).
 */
export class Spawner {
  private readonly shell: StandingChild;
  private readonly calls = new Map<number, Call>();
  private readonly queued: { line: string; call: Call }[] = [];
  private next = 0;
  /** A line is a few digits: a longer unfinished one is not ours. */
  private readonly lines = new AnswerLines(1024);
  private readonly dir: string;
  private readonly fifoStock: FifoStock;

  /** `maxSeconds`: see MAX_SECONDS (tests make it short). */
  constructor(
    private readonly busybox: string,
    private readonly maxSeconds = MAX_SECONDS,
  ) {
    this.dir = mkdtempSync(join(memoryDir(), 'alacarte-spawner-'));
    this.shell = new StandingChild(
      'the spawner shell',
      busybox,
      ['sh', '-s'],
      (text) => this.answers(text),
      (why) => this.fail(new Error(why)),
    );
    this.fifoStock = new FifoStock(this.dir, (paths, owner) => this.mkfifo(paths, owner));
    process.once('exit', this.removeDir);
  }

  /** Removes the private directory: at close(), or when the process exits without one. */
  private readonly removeDir = (): void => rmSync(this.dir, { recursive: true, force: true });

  /**
   * Runs `file args` to its end; resolves with its exit status (128 + n for a death by signal n) and
   * its output up to `maxOutput` bytes each. `detached`: no output is kept (a created container
   * keeps whatever stdio the runtime got). Rejects only when the shell itself failed.
   */
  run(file: string, args: readonly string[], maxOutput: number, detached = false): Promise<ProcessResult> {
    return new Promise((resolve, reject) => {
      const n = this.next++;
      const call: Call = { n, resolve, reject, maxOutput, detached };
      const words = [file, ...args].map(quote).join(' ');
      const out = detached ? '/dev/null' : quote(join(this.dir, `${n}.out`));
      const err = detached ? '/dev/null' : quote(join(this.dir, `${n}.err`));
      // Its pid is told first, so that one that hangs can be killed after maxSeconds.
      const line = `(${words} </dev/null >${out} 2>${err} & echo "${n} p $!"; wait $!; echo "${n} $?") &\n${REAP}`;
      call.onPid = (pid) => {
        call.timer = setTimeout(() => killQuietly(pid), this.maxSeconds * 1000);
        call.timer.unref();
      };
      if (this.calls.size < MAX_RUNNING) this.send(line, call);
      else this.queued.push({ line, call });
    });
  }

  /**
   * Runs `file args` with its standard streams on the given paths (FIFOs the caller reads, so that
   * output streams as it comes), to its end: resolves with its exit status (128 + n for a death by
   * signal n). `onPid` is told its host pid once it has started (to kill a program that hangs).
   * Rejects only when the shell itself failed.
   */
  runPiped(
    file: string,
    args: readonly string[],
    io: PipedIo,
    onPid?: (pid: number) => void,
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      const n = this.next++;
      const call: Call = { n, resolve: (r) => resolve(r.code), reject, maxOutput: 0, detached: true, onPid };
      const words = [file, ...args].map(quote).join(' ');
      const stdin = io.stdin === undefined ? '/dev/null' : quote(io.stdin);
      const line = `(${words} <${stdin} >${quote(io.stdout)} 2>${quote(io.stderr)} & echo "${n} p $!"; wait $!; echo "${n} $?") &\n${REAP}`;
      if (this.calls.size < MAX_RUNNING) this.send(line, call);
      else this.queued.push({ line, call });
    });
  }

  /**
   * `count` fresh FIFOs (mode 0600) in this spawner's private directory, made ahead in batches by one
   * mkfifo (Node cannot make a FIFO itself). The caller removes them once opened by both sides.
   */
  fifos(count: number): Promise<string[]> {
    return this.fifoStock.take(count);
  }

  /**
   * Makes `paths` FIFOs (mode 0600) with one busybox mkfifo, chowned to `owner` when given (see
   * fifo-stock.ts). Rejects when that failed.
   */
  async mkfifo(paths: readonly string[], owner?: { uid: number; gid: number }): Promise<void> {
    const script = owner
      ? `mkfifo -m 0600 "$@" && chown ${owner.uid}:${owner.gid} "$@"`
      : 'mkfifo -m 0600 "$@"';
    const r = await this.run(this.busybox, ['sh', '-c', script, 'sh', ...paths], 4096);
    if (r.code !== 0) throw new Error(`mkfifo failed: ${r.stderr.trim()}`);
  }

  /** A path in this spawner's private directory (for a caller's temporary file). */
  path(name: string): string {
    return join(this.dir, name);
  }

  /** Ends the shell (programs it started run to their end) and removes its directory. */
  close(): void {
    this.shell.end();
    this.fail(new Error('the spawner was closed'));
    // Off the process's exit listeners too: a process that makes and closes many drivers (a test
    // run) would otherwise pile them up.
    process.off('exit', this.removeDir);
    this.removeDir();
  }

  /** Fails every call under way and waiting: the shell is gone (a new one serves the next call). */
  private fail(err: Error): void {
    this.lines.clear();
    for (const call of this.calls.values()) {
      clearTimeout(call.timer);
      call.reject(err);
    }
    this.calls.clear();
    for (const { call } of this.queued.splice(0)) call.reject(err);
  }

  private send(line: string, call: Call): void {
    // Calls under way keep the process alive, an idle shell does not.
    if (this.calls.size === 0) this.shell.hold();
    this.calls.set(call.n, call);
    this.shell.write(line);
  }

  private answers(text: string): void {
    this.lines.feed(text, (line) => {
      const started = /^(\d+) p (\d+)$/.exec(line);
      if (started) {
        this.calls.get(Number(started[1]))?.onPid?.(Number(started[2]));
        return;
      }
      const m = /^(\d+) (\d+)$/.exec(line);
      if (!m) return;
      const call = this.calls.get(Number(m[1]));
      if (!call) return;
      this.calls.delete(call.n);
      clearTimeout(call.timer);
      const next = this.queued.shift();
      if (next) this.send(next.line, next.call);
      if (this.calls.size === 0) this.shell.release();
      call.resolve({
        code: Number(m[2]),
        stdout: call.detached ? '' : this.take(`${call.n}.out`, call.maxOutput),
        stderr: call.detached ? '' : this.take(`${call.n}.err`, call.maxOutput),
      });
    });
  }

  /** Reads a call's output file up to max bytes, then removes it. */
  private take(name: string, cap: number): string {
    let max = cap;
    const path = join(this.dir, name);
    try {
      const fd = openSync(path, 'r');
      try {
        const buf = Buffer.alloc(Math.min(max, fstatSync(fd).size));
        max = buf.length;
        let len = 0;
        while (len < max) {
          const got = readSync(fd, buf, len, max - len, null);
          if (got === 0) break;
          len += got;
        }
        return buf.subarray(0, len).toString('utf8');
      } finally {
        closeSync(fd);
        rmSync(path, { force: true });
      }
    } catch {
      return '';
    }
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}

function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

const TMPFS_MAGIC = 0x01021994;

/**
 * Where the calls' output files go: /dev/shm when it is a tmpfs we may write, else the temporary
 * directory. Two files are made and removed per call; on ext4 (/tmp on many hosts) each new inode
 * costs a scan past the inodes removed in the last minutes (ext4 `recently_deleted`), which with
 * sandboxes coming and going was, over all the files of a sandbox's life, about a sixth of its CPU on
 * the bench host (bench/RESULTS.md).
 */
function memoryDir(): string {
  try {
    if (statfsSync('/dev/shm').type === TMPFS_MAGIC) {
      accessSync('/dev/shm', constants.W_OK);
      return '/dev/shm';
    }
  } catch {
    // no /dev/shm here
  }
  return tmpdir();
}
