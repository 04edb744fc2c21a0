import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, rmdirSync, rmSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverLogger } from './crun-options.js';
import { runProcess } from './run-process.js';

/**
 * The sandboxes' run state on a tmpfs of the driver's own (issue 13, bench/PROFILES.md).
 *
 * Per start and per exec the driver makes, replaces and removes a dozen small files in a sandbox's
 * run directory (lease.json, deadline, command.sh, each exec's script and its two FIFOs), on the
 * node's thread. In the data directory (ext4 on most hosts) each new inode costs a journal entry and
 * a scan past the inodes removed in the last minutes (ext4 `recently_deleted`), which sandboxes coming
 * and going keep long. So every sandbox's run directory (what it sees read-only at /run/alacarte) is
 * `<run state>/<container>/run`, with the host's meta.json beside it (out of the sandbox's sight),
 * `<runtimeDir>/<container>/run` and `.../meta.json` being links to them, and the exec FIFOs made
 * ahead wait in `<run state>/.exec` (renamed into a sandbox's run directory: the same file
 * system). The run state is `<stateDir>-run` beside the runtime's state (/run, a tmpfs that empties
 * at boot on most hosts, as the sandboxes do): used as it is when it is on a tmpfs, else a tmpfs is
 * mounted there. Nothing in it is the tenant's: its disk (the writable layer) is where it was; an
 * exec's stdin waits there while the exec runs, as with `crun exec` (on /dev/shm).
 *
 * Sandboxes outlive the node: the tmpfs stays mounted while any sandbox has its run directory in it,
 * and a restarted node finds it mounted and uses it again. It is unmounted when the last driver of
 * the process on it closes and no sandbox (and no other live process) has anything left in it. A
 * host that cannot mount one (not permitted) keeps the directory where it is, on /run's file
 * system; sandboxes made by a node before this keep their run directory in their own directory.
 */

/** The exec FIFOs' directory in the run state (one directory per process in it). */
export const EXEC_FIFOS = '.exec';

/** The kernel's file system type of a tmpfs (statfs f_type). */
export const TMPFS_MAGIC = 0x01021994;

/**
 * At most this share of the host's memory (tmpfs pages are memory): the files are a few hundred
 * bytes but for an exec's stdin (up to the API's cap) while it runs.
 */
const TMPFS_OPTIONS = 'mode=0711,size=25%';

/** Run state directory -> drivers of this process that use it. */
const users = new Map<string, number>();

/** Directory -> this process's exec FIFO directory in it (its drivers share it), and its removal at exit. */
const fifoDirs = new Map<string, { own: string; onExit: () => void }>();

/**
 * This process's directory for exec FIFOs in `dir` (the run state; or, for sandboxes made by a node
 * before it, the runtime directory), `<dir>/.exec/<pid>-<hex>`, reachable by root only, made on
 * first use; those of processes that are gone (a crash) are removed then. Removed when the process
 * exits.
 */
export function execFifoDir(dir: string): string {
  const known = fifoDirs.get(dir);
  if (known) return known.own;
  const base = join(dir, EXEC_FIFOS);
  mkdirSync(base, { recursive: true, mode: 0o700 });
  sweepExecFifos(base);
  const own = join(base, `${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(own, { mode: 0o700 });
  const onExit = () => rmSync(own, { recursive: true, force: true });
  process.once('exit', onExit);
  fifoDirs.set(dir, { own, onExit });
  return own;
}

/**
 * Makes `dir` the run state, on a tmpfs when it can be: one there already (a node before this one,
 * whose sandboxes are in it, or /run being one) is used as it is; an empty directory on another file
 * system gets one mounted; one that holds sandboxes' state already (no tmpfs could be mounted
 * before) is left as it is. Never throws for want of a tmpfs (logs it); throws when the directory
 * cannot be made. The sandboxes' unprivileged ids must be able to search it (mode 0711).
 */
export async function openRunState(dir: string, busybox: string, log: DriverLogger): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  users.set(dir, (users.get(dir) ?? 0) + 1);
  if (isTmpfs(dir)) return;
  if (readdirSync(dir).length > 0) {
    log.warn(`alacarte: ${dir} is not a tmpfs and holds sandboxes' state already; used as it is`);
    return;
  }
  const r = await runProcess(busybox, ['mount', '-t', 'tmpfs', '-o', TMPFS_OPTIONS, 'tmpfs', dir]);
  if (r.code !== 0 || !isTmpfs(dir)) {
    log.warn(
      `alacarte: no tmpfs for the sandboxes' run state (${r.stderr.trim() || 'not mounted'}); ${dir} stays on its parent's file system`,
    );
  }
}

/**
 * A driver of this process is done with `dir` (openRunState's). After the last one: its own mount
 * is removed when no sandbox has a run directory in it and no other live process keeps exec FIFOs
 * there (a sandbox outliving the node keeps it, and the next node uses it). Best effort.
 */
export async function closeRunState(dir: string, busybox: string): Promise<void> {
  const left = (users.get(dir) ?? 1) - 1;
  if (left > 0) {
    users.set(dir, left);
    return;
  }
  users.delete(dir);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  const own = fifoDirs.get(dir);
  fifoDirs.delete(dir);
  if (own !== undefined) {
    // Off the process's exit listeners: a process that opens and closes many run states (a test
    // run) would otherwise pile them up.
    process.off('exit', own.onExit);
    own.onExit();
  }
  if (entries.some((e) => e !== EXEC_FIFOS)) return;
  const fifos = join(dir, EXEC_FIFOS);
  if (entries.includes(EXEC_FIFOS)) {
    sweepExecFifos(fifos);
    try {
      if (readdirSync(fifos).length > 0) return;
      rmdirSync(fifos);
    } catch {
      return;
    }
  }
  if (isOwnMount(dir) && (await runProcess(busybox, ['umount', dir])).code !== 0) return;
  try {
    rmdirSync(dir);
  } catch {
    // made again meanwhile, or not empty: left
  }
}

/** Removes the exec FIFO directories (`<pid>-<hex>`) in `base` of processes that are gone (a crash). */
export function sweepExecFifos(base: string): void {
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return;
  }
  for (const entry of entries) {
    const pid = Number.parseInt(entry, 10);
    if (pid > 0 && pid !== process.pid && !processAlive(pid))
      rmSync(join(base, entry), { recursive: true, force: true });
  }
}

/**
 * Sandboxes' directories in the run state `dir` whose sandbox directory (of the same name) in
 * `runtimeDir` is gone and that `keep` does not claim (not a sandbox's name, or one being made): the
 * remains of a removal cut short (a crash). Removed; returns their names.
 */
export function sweepRunState(dir: string, runtimeDir: string, keep: (name: string) => boolean): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const entry of entries) {
    if (entry === EXEC_FIFOS || keep(entry)) continue;
    try {
      lstatSync(join(runtimeDir, entry));
      continue;
    } catch {
      // its sandbox directory is gone
    }
    rmSync(join(dir, entry), { recursive: true, force: true });
    removed.push(entry);
  }
  return removed;
}

function isTmpfs(dir: string): boolean {
  try {
    return statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/** A tmpfs mounted at `dir` itself (not a directory of a /run that is a tmpfs as a whole). */
function isOwnMount(dir: string): boolean {
  try {
    return isTmpfs(dir) && statSync(dir).dev !== statSync(join(dir, '..')).dev;
  } catch {
    return false;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
