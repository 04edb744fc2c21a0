import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DriverLogger } from './crun-options.js';
import type { OciMount } from './oci-spec.js';
import { requireProgram } from './preflight.js';
import { runProcess } from './run-process.js';

/**
 * lxcfs (a FUSE file system from Debian's `lxcfs` package) answers reads of /proc/meminfo,
 * /proc/cpuinfo, /proc/stat, ... with the figures of the reading process's own cgroups. Bound over
 * a sandbox's /proc files, it makes `free`, `nproc`, `top` and `uptime` inside show the lease's own
 * memory limit, CPUs and start time instead of the host's.
 *
 * One lxcfs serves the whole machine: every driver (several nodes, tests running side by side)
 * reuses the one that is mounted, at whatever mount point, and starts one at DEFAULT_LXCFS_DIR
 * (Debian's own, so the distribution's service and ours are the same) only when none runs. It is
 * started detached and never stopped by a driver: sandboxes outlive their node, and the files they
 * mounted answer only while this lxcfs process lives. lxcfs locks its pid file, so of two drivers
 * starting it at once the second exits and both use the first.
 */
export const DEFAULT_LXCFS_DIR = '/var/lib/lxcfs';

/** The proc files lxcfs provides, each bound over the sandbox's own. */
export const LXCFS_PROC_FILES = [
  'meminfo',
  'cpuinfo',
  'stat',
  'uptime',
  'loadavg',
  'diskstats',
  'swaps',
] as const;

/** Where `nproc` without sched_getaffinity (and libuv, the JVM, Go) looks up the CPUs. */
const CPU_ONLINE = '/sys/devices/system/cpu/online';

/** Mount points of fuse.lxcfs file systems in this mount namespace, from /proc/self/mountinfo. */
export function lxcfsMountPoints(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const found: string[] = [];
  for (const line of mountinfo.split('\n')) {
    // Fields after the " - " separator: fs type, source, super options.
    const [before, after] = line.split(' - ');
    if (!before || !after?.startsWith('fuse.lxcfs ')) continue;
    const point = before.split(' ')[4];
    if (point)
      found.push(
        point.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))),
      );
  }
  return found;
}

/**
 * The lxcfs at `dir` answers: a FUSE mount whose daemon died answers every call with ENOTCONN.
 * An open and a close, no process spawned (a stat may be answered from the kernel's attribute
 * cache without asking the daemon).
 */
export function lxcfsAnswers(dir: string): boolean {
  try {
    closeSync(openSync(`${dir}/proc/meminfo`, 'r'));
    return true;
  } catch {
    return false;
  }
}

/**
 * lxcfsAnswers through the thread pool: the open goes to the lxcfs daemon (FUSE) and waits for its
 * answer, a few milliseconds under load that the node's thread would otherwise spend waiting.
 */
export async function lxcfsAnswersSoon(dir: string): Promise<boolean> {
  return within(
    FUSE_ANSWER_MS,
    (async () => {
      try {
        await (await open(`${dir}/proc/meminfo`, 'r')).close();
        return true;
      } catch {
        return false;
      }
    })(),
    false,
  );
}

/**
 * How long an open of an lxcfs file may take before that lxcfs counts as not answering, in ms: a
 * FUSE daemon that is alive but stuck leaves the open waiting for ever, and a sandbox start must not
 * wait with it (the open itself stays on its thread-pool thread until the daemon answers or dies).
 */
const FUSE_ANSWER_MS = 3000;

/** `work`'s value, or `fallback` once `ms` have passed without one. */
function within<T>(ms: number, work: Promise<T>, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
    timer.unref();
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** The first of `points` whose lxcfs answers within FUSE_ANSWER_MS, in order. */
async function firstAnswering(points: string[]): Promise<string | undefined> {
  for (const p of points) if (await lxcfsAnswersSoon(p)) return p;
  return undefined;
}

/** Bind mounts of an lxcfs at `dir` over a sandbox's /proc files and its online-CPU list. */
export function lxcfsMounts(dir: string): OciMount[] {
  const bind = (source: string, destination: string): OciMount => ({
    destination,
    type: 'bind',
    source,
    options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'],
  });
  return [
    ...LXCFS_PROC_FILES.map((f) => bind(`${dir}/proc/${f}`, `/proc/${f}`)),
    bind(`${dir}${CPU_ONLINE}`, CPU_ONLINE),
  ];
}

export interface LxcfsOptions {
  /** Where to start lxcfs when none runs; default DEFAULT_LXCFS_DIR. */
  dir?: string;
  logger: DriverLogger;
  /** How long to wait for a started lxcfs to mount, in ms (default 5000). */
  waitMs?: number;
  /** The lxcfs program (default: found on PATH) and this mount namespace's mountinfo; for tests. */
  program?: string;
  mountinfo?: () => string;
}

/**
 * Makes sure an lxcfs answers and returns its mount point (the one at `dir` if it runs, else any
 * other running one, else a new one started at `dir`), or undefined (with a warning saying
 * why) when it cannot run: sandboxes then start without it and show the host's figures.
 * A dead mount at the chosen directory (its daemon killed) is lazily unmounted and replaced;
 * sandboxes that mounted the dead one keep failing reads of those files (ENOTCONN) until they end.
 */
export async function ensureLxcfs(options: LxcfsOptions): Promise<string | undefined> {
  const log = options.logger;
  const dir = options.dir ?? DEFAULT_LXCFS_DIR;
  const mounted = () => lxcfsMountPoints(options.mountinfo?.());
  // The configured one first, then any other that answers.
  const points = mounted();
  // Bounded checks: a stuck lxcfs (alive, not answering) must not hang the node's start.
  const running = await firstAnswering([dir, ...points].filter((p) => points.includes(p)));
  if (running) return running;
  let program: string;
  try {
    program = options.program ?? requireProgram('lxcfs', 'lxcfs');
  } catch (e) {
    log.warn(`alacarte: ${(e as Error).message}; sandboxes will show the host's memory and CPUs`);
    return undefined;
  }
  try {
    if (points.includes(dir)) await runProcess('umount', ['-l', dir]);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    // In the foreground (so its pid is this child's), detached in a session of its own: it must
    // outlive this node, as its sandboxes do.
    // --enable-loadavg: /proc/loadavg counts the sandbox's own tasks (a thread of lxcfs samples
    // them every 5 s, only for cgroups whose loadavg was read).
    const child = spawn(program, ['--foreground', '--enable-loadavg', dir], {
      detached: true,
      stdio: 'ignore',
    });
    child.on('error', () => {});
    child.unref();
    const until = Date.now() + (options.waitMs ?? 5000);
    while (Date.now() < until) {
      if (await lxcfsAnswersSoon(dir)) {
        log.info(`alacarte: started lxcfs at ${dir} (pid ${child.pid}); it stays running for all sandboxes`);
        return dir;
      }
      // Another driver may have won the pid-file lock and mounted elsewhere.
      const other = await firstAnswering(mounted().filter((p) => p !== dir));
      if (other) return other;
      await sleep(50);
    }
  } catch (e) {
    log.warn(`alacarte: lxcfs could not be started at ${dir}: ${String(e)}`);
    return undefined;
  }
  log.warn(
    `alacarte: lxcfs did not mount at ${dir} (is /dev/fuse there?); sandboxes will show the host's memory and CPUs`,
  );
  return undefined;
}

/**
 * The lxcfs one driver binds into its sandboxes: found or started once (`open`), replaced when it
 * stops answering (`forNewSandbox`, called only where sandboxes are made ahead, off start()'s path).
 * Where lxcfs cannot run at all it is not tried again: that would only slow every sandbox down.
 */
export class DriverLxcfs {
  private replacing: Promise<void> | undefined;
  /** The answeringDevice() check under way. */
  private checking: Promise<number | undefined> | undefined;

  private constructor(
    private dir: string | undefined,
    /** Where to start one again; undefined when lxcfs is off or could not run. */
    private readonly startAt: string | undefined,
    private readonly log: DriverLogger,
  ) {}

  /** `dir` false: no lxcfs (sandboxes show the host's figures). */
  static async open(dir: string | false | undefined, log: DriverLogger): Promise<DriverLxcfs> {
    if (dir === false) return new DriverLxcfs(undefined, undefined, log);
    const startAt = dir ?? DEFAULT_LXCFS_DIR;
    const found = await ensureLxcfs({ dir: startAt, logger: log });
    return new DriverLxcfs(found, found ? startAt : undefined, log);
  }

  /** The mount point to bind from in a sandbox about to be made, after replacing a dead lxcfs. */
  async forNewSandbox(): Promise<string | undefined> {
    const { dir, startAt } = this;
    if (!startAt || (dir && (await lxcfsAnswersSoon(dir)))) return dir;
    this.replacing ??= (async () => {
      this.log.warn('alacarte: lxcfs stopped answering; using or starting another for new sandboxes');
      this.dir = await ensureLxcfs({ dir: startAt, logger: this.log });
    })().finally(() => {
      this.replacing = undefined;
    });
    await this.replacing;
    return this.dir;
  }

  /**
   * The lxcfs files of the sandbox whose init has host pid `initPid` still answer (true when this
   * driver binds none). One open through the sandbox's root: only for sandboxes made ahead, before
   * any tenant had them.
   */
  async answersIn(initPid: number): Promise<boolean> {
    return this.dir === undefined || lxcfsAnswersSoon(`/proc/${initPid}/root`);
  }

  /**
   * The device number of the lxcfs that new sandboxes bind, if it answers now (undefined: it does
   * not, or none is bound). A sandbox made while the same device answered binds that very FUSE
   * mount (a restarted lxcfs mounts with another device), so this one check stands for the
   * answersIn() of every such sandbox: the takes of a burst that arrive while a check runs share it
   * instead of queueing an open each in the thread pool. A finished check is never reused: a take
   * always hears of an lxcfs that died before it asked.
   */
  answeringDevice(): Promise<number | undefined> {
    const dir = this.dir;
    if (dir === undefined) return Promise.resolve(undefined);
    this.checking ??= within<number | undefined>(
      FUSE_ANSWER_MS,
      (async () => {
        const file = await open(`${dir}/proc/meminfo`, 'r');
        try {
          return (await file.stat()).dev;
        } finally {
          await file.close();
        }
      })(),
      undefined,
    )
      .catch(() => undefined)
      .finally(() => {
        this.checking = undefined;
      });
    return this.checking;
  }
}
