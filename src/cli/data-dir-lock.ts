import { readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../config.js';

/** The lock file's name inside the data directory. */
export const LOCK_FILE = 'serve.lock';

/** Bounded retries of take-over: each round either creates the file or finds a live holder. */
const MAX_ATTEMPTS = 5;

/** A held lock on a data directory; release() is idempotent. */
export interface DataDirLock {
  /** Path of the lock file. */
  readonly path: string;
  /** Removes the lock file if it is still this process's. */
  release(): void;
}

/**
 * The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), undefined where
 * /proc has no such process. Together with the pid it names one process: a pid reused after a
 * kill -9 has another start time, so a stale lock is not mistaken for a live one.
 */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: count fields after its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the process a lock file names (`PID START`) still runs. */
function holderAlive(pid: number, start: string | undefined): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  const now = startTime(pid);
  if (now !== undefined) return start === undefined || start === now;
  try {
    // No /proc (or not readable): signal 0 says whether the pid exists at all.
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the exclusive lock of `alacarte serve` on a data directory: a file `serve.lock` created
 * exclusively (O_EXCL) holding `PID START` (start time, see startTime). A lock whose process is gone
 * (kill -9, power loss) is taken over; a live one makes this throw a ConfigError naming the
 * directory, the pid and the next step. Two nodes on one directory would share the SQLite store, the
 * mint seed and the sandboxes, and each reconcile the other's sandboxes away. Replicas on
 * PostgreSQL each have their own data directory, so they never meet here.
 *
 * @param dataDir an existing data directory
 * @throws ConfigError when another live process holds the directory
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const path = join(dataDir, LOCK_FILE);
  const mine = `${process.pid} ${startTime(process.pid) ?? ''}`.trim();
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    try {
      writeFileSync(path, `${mine}\n`, { flag: 'wx', mode: 0o600 });
      return { path, release: () => releaseIfMine(path, mine) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let held: string;
    try {
      held = readFileSync(path, 'utf8').slice(0, 100).trim();
    } catch (e) {
      // Released between our create and read: try again.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    const [pidText, start] = held.split(' ');
    const pid = Number(pidText);
    // An empty file is one being written right now (create and write are two steps), unless old.
    if (held === '' ? !emptyAbandoned(path) : holderAlive(pid, start)) {
      throw new ConfigError(
        `data directory ${resolve(dataDir)} is in use by another alacarte node (pid ${held === '' ? '?' : pid}, lock ${resolve(path)}): stop it, or give this one its own directory with --data DIR`,
      );
    }
    // Stale: its process is gone. Remove only what we read, then race for a fresh exclusive create.
    try {
      if (readFileSync(path, 'utf8').slice(0, 100).trim() === held) unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  throw new ConfigError(`could not take the lock ${resolve(path)}: another process keeps changing it`);
}

/** An empty lock file older than a few seconds: its writer died between create and write. */
function emptyAbandoned(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs > 10_000;
  } catch {
    return true;
  }
}

function releaseIfMine(path: string, mine: string): void {
  try {
    if (readFileSync(path, 'utf8').trim() === mine) unlinkSync(path);
  } catch {
    // Already gone: nothing to release.
  }
}
