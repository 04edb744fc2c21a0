import { closeSync, constants as fsConstants, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverLogger } from './crun-options.js';
import { AGENT_REQUESTS, NATIVE_REQUESTS } from './exec-agent.js';
import { fifoWaker } from './fifo-waker.js';
import { NATIVE_INIT_NAME, WAKE_FIFO } from './init-script.js';
import { IN_SANDBOX, type InitKind } from './oci-spec.js';

/**
 * A sandbox's init seen from the host: whether it still runs (its pid, checked against its cgroup
 * and start time, as pids get reused), waiting until it and its exec agent are ready after the
 * runtime started it, waking it, and the live processes of its cgroup. Reads /proc only: no spawn.
 */
export class InitPids {
  /** lease id -> its init as last seen alive (pid, start time in clock ticks since boot). */
  private readonly inits = new Map<string, { pid: number; start: string }>();

  /**
   * @param dirOf the lease's directory (its link in the runtime directory), holding init.pid.
   * @param cgroupPathOf the cgroup path of the lease's sandbox, undefined when there is none.
   */
  constructor(
    private readonly dirOf: (leaseId: string) => string,
    private readonly cgroupPathOf: (leaseId: string) => string | undefined,
  ) {}

  /** The host pid of a sandbox's init, only while it is alive and really ours (pids get reused). */
  initPid(leaseId: string): number | undefined {
    // Once found, an init is recognised by its pid and start time (pids get reused): one /proc
    // read instead of three, for watch()'s poll over every sandbox.
    const known = this.inits.get(leaseId);
    if (known) {
      const stat = procStat(known.pid);
      if (stat?.start === known.start) return stat.zombie ? undefined : known.pid;
      this.inits.delete(leaseId);
      return undefined;
    }
    let pid: number;
    try {
      pid = Number.parseInt(readFileSync(join(this.dirOf(leaseId), 'init.pid'), 'utf8'), 10);
      if (!(pid > 1)) return undefined;
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      const path = this.cgroupPathOf(leaseId);
      if (path === undefined || !cgroup.includes(`:${path}\n`)) return undefined;
      const stat = procStat(pid);
      if (stat === undefined || stat.zombie) return undefined;
      this.inits.set(leaseId, { pid, start: stat.start });
    } catch {
      return undefined;
    }
    return pid;
  }

  /** Forgets what was seen of the lease's init (its sandbox was removed). */
  forget(leaseId: string): void {
    this.inits.delete(leaseId);
  }
}

/**
 * Starting returns once the container is told to run, which can be just before its first process
 * has replaced the runtime's code with init; joining it in that instant fails. Wait for init, and
 * until it keeps its deadline out of its tenant's reach: the shell init runs its deadline loop from
 * its unreadable busybox (init-script.ts), the native one has taken its uid, made itself
 * non-dumpable and then its name NATIVE_INIT_NAME (native/sandbox-init.c). Only then is the
 * sandbox handed out.
 */
export async function untilInitRuns(dir: string, init: InitKind): Promise<void> {
  const pid = Number.parseInt(readFileSync(join(dir, 'init.pid'), 'utf8'), 10);
  for (let i = 0; i < 5000; i++) {
    let seen: string;
    try {
      seen = readFileSync(init === 'native' ? `/proc/${pid}/comm` : `/proc/${pid}/cmdline`, 'utf8');
    } catch {
      throw new Error('init exited right after start');
    }
    if (init === 'native' ? seen === `${NATIVE_INIT_NAME}\n` : isShellInitLoop(seen)) return;
    // Usually a matter of microseconds: yield without a timer first.
    await new Promise((r) => (i < 20 ? setImmediate(r) : setTimeout(r, 1)));
  }
  throw new Error('init did not start within 5 s');
}

/**
 * Waits (at most 5 s) until the exec agent init started holds its request FIFO, so that a
 * lease's first command already goes through it: an exec that finds no reader falls back to
 * `crun exec`, slower and without the config's no_new_privs, RLIMIT_NOFILE and OOM score. A write
 * end opened without blocking answers ENXIO while nothing reads; it is closed again at once, and
 * the agent (which holds the FIFO read-write) sees no end of input. Never throws: past the wait
 * the sandbox is handed out as it is and its execs fall back.
 */
export async function untilAgentReads(dir: string, log: DriverLogger): Promise<void> {
  // The native agent's FIFO, or the shell agent's (init starts one of them).
  const fifos = [join(dir, 'run', NATIVE_REQUESTS), join(dir, 'run', AGENT_REQUESTS)];
  for (let i = 0; i < 5000; i++) {
    let absent = 0;
    for (const fifo of fifos) {
      try {
        closeSync(openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW));
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // ENOENT: no such FIFO made for this sandbox; anything but ENXIO (no reader yet): give up.
        if (code === 'ENOENT') absent++;
        else if (code !== 'ENXIO') return;
      }
    }
    if (absent === fifos.length) return;
    await new Promise((r) => (i < 20 ? setImmediate(r) : setTimeout(r, 1)));
  }
  log.warn("alacarte: a sandbox's exec agent did not start within 5 s; its commands use crun exec");
}

/** The shell init's command line once it runs its deadline loop. */
const isShellInitLoop = (cmdline: string) =>
  cmdline.startsWith(`${IN_SANDBOX.initBusybox}\0`) && cmdline.includes(IN_SANDBOX.init);

/** A process's state (zombie or not) and start time, from /proc/<pid>/stat; undefined once it is gone. */
function procStat(pid: number): { zombie: boolean; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the command name (in parentheses, which may hold anything): state is field 3, starttime 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { zombie: fields[0] === 'Z', start: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

/** The processes listed in a cgroup.procs file that have not exited (zombies are done). */
export function livePids(procs: string): number[] {
  let text: string;
  try {
    text = readFileSync(procs, 'utf8');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const pid = Number.parseInt(line, 10);
    if (!(pid > 1)) continue;
    try {
      if (!/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) out.push(pid);
    } catch {
      // exited
    }
  }
  return out;
}

/**
 * Wakes a sandbox's init: a line into the FIFO it waits on. The byte stays in the pipe until init
 * reads it, so a wake-up sent while init is busy is never lost (a signal could be). Nobody reading
 * (init gone) is fine: there is nothing left to wake.
 */
export function wakeInit(dir: string, fifo = WAKE_FIFO): Promise<void> {
  let fd: number;
  try {
    fd = openSync(join(dir, 'run', fifo), fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
  } catch {
    // init has ended
    return Promise.resolve();
  }
  // The write wakes a process of the sandbox, which the kernel may run at once ahead of the writer:
  // not from the node's thread (fifo-waker.ts; a burst wakes a hundred). Resolves once written (or
  // found full or unread), never rejects.
  return new Promise((resolve) => fifoWaker().write(fd, '\n', () => resolve()));
}
