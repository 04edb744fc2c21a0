import { readFileSync } from 'node:fs';

/** What /proc/<pid>/stat says about a process, in host pid numbers. */
export interface ProcStat {
  pid: number;
  /** One letter: R, S, D, Z (exited, not yet reaped)... */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is the process's own choice and may hold
 * spaces and parentheses, so the fields are read after its last `)`. Undefined once it is gone.
 */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const [ppid, pgrp, session] = [rest[1], rest[2], rest[3]].map((f) => Number.parseInt(f ?? '', 10));
  if (ppid === undefined || pgrp === undefined || session === undefined) return undefined;
  if (![ppid, pgrp, session].every(Number.isSafeInteger)) return undefined;
  return { pid, state: rest[0] ?? '', ppid, pgrp, session };
}

/** The pid a runtime wrote into a pid file (`--pid-file`), or undefined while none is there. */
export function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The processes (host pids) in a cgroup, from its cgroup.procs file; empty once it is gone. */
export function cgroupPids(procsFile: string): number[] {
  try {
    return readFileSync(procsFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((p) => Number.parseInt(p, 10))
      .filter((p) => p > 1);
  } catch {
    return [];
  }
}

/** True while `pid` is a process of the cgroup (so a pid read from a file is not someone else's by now). */
export function inCgroup(pid: number, procsFile: string): boolean {
  return cgroupPids(procsFile).includes(pid);
}

/**
 * SIGKILLs every process an exec started, found among the sandbox's own processes (its cgroup, which
 * nothing inside can leave): everything in the session of the exec's first process (`crun exec`
 * gives each exec a session of its own, and its background jobs stay in it) and every descendant of
 * those. Sweeps until one finds nothing, so a child forked during a sweep is caught by the next.
 * What escapes: a process that left the session (setsid) and whose parent had already exited
 * (a daemon, reparented to init), the same as a daemon an exec that did not time out leaves behind.
 *
 * `leader` is the host pid of the exec's command; nothing is killed unless it is in the cgroup.
 * Returns how many processes were signalled.
 */
export function killExecTree(leader: number, procsFile: string): number {
  if (!inCgroup(leader, procsFile)) return 0;
  const first = procStat(leader);
  if (!first) return 0;
  // Only a session the exec's command leads is the exec's own. One it does not lead says nothing
  // about which exec a process came from: a runtime that gave the exec none (it shares ours), or a
  // command killed in the instant between the agent's fork and its setsid (its session is still the
  // agent's, which every other exec of the lease descends from): descendants alone then.
  const session = first.session === leader ? first.session : undefined;
  let killed = 0;
  for (let sweep = 0; sweep < 50; sweep++) {
    const stats = cgroupPids(procsFile)
      .map(procStat)
      .filter((s): s is ProcStat => s !== undefined);
    const victims = new Set<number>([leader]);
    if (session !== undefined) for (const s of stats) if (s.session === session) victims.add(s.pid);
    // Descendants, to any depth, of what is already marked.
    for (let grew = true; grew; ) {
      grew = false;
      for (const s of stats) {
        if (!victims.has(s.pid) && victims.has(s.ppid)) {
          victims.add(s.pid);
          grew = true;
        }
      }
    }
    let hit = 0;
    for (const pid of victims) {
      // A zombie is dead already; signalling it would look like progress forever.
      if (!stats.some((s) => s.pid === pid && s.state !== 'Z')) continue;
      try {
        process.kill(pid, 'SIGKILL');
        hit++;
      } catch {
        // exited meanwhile
      }
    }
    if (hit === 0) break;
    killed += hit;
  }
  return killed;
}
