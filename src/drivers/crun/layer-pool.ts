import { randomBytes } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import type { MadeLimits } from './cgroup-limits.js';
import type { DriverLogger } from './crun-options.js';
import { type HostFs, hostFs, LEASE_LINK } from './host-fs.js';
import { START_FIFO, WAKE_FIFO } from './init-script.js';
import { runProcess } from './run-process.js';

/**
 * How far back takes count as the demand the pool is sized to (LayerPoolOptions.maxSize): about
 * the time a refill takes on a busy host, so that the pool covers what is taken meanwhile without
 * making (on a 2-core host, expensively) sandboxes that nobody takes.
 */
export const DEMAND_WINDOW_MS = 5_000;

/**
 * A pool of an (image, disk size) nobody took from for this long, and that prewarm() did not ask
 * for, is emptied: no offer is being rented with it, and each waiting sandbox holds memory.
 */
export const IDLE_KEY_MS = 600_000;

/**
 * Ready sandboxes beyond the takes of this long are reaped (trim()): longer than the sizing window,
 * so that the next burst of a busy spell still finds them, short enough that a burst's surplus does
 * not hold memory for the hour a made-ahead sandbox may wait.
 */
export const REAP_AFTER_MS = 60_000;

/** Takes remembered per (image, disk size) for catchingUp(): more than a second of any demand here. */
const MAX_RECENT_TAKES = 1024;

/** A sandbox made ahead: its directory (layer mounted) and, once created, its container. */
export interface WarmSandbox {
  dir: string;
  /** Name of the created (not yet started) container; also the last part of its cgroup path. */
  name: string;
  /** The limits its container was created with, when not the placeholders (cgroup-limits.ts). */
  limits?: MadeLimits;
}

export interface LayerPoolOptions {
  /** Sandbox directories live here, named after their container (a start only links its lease to one). */
  runtimeDir: string;
  /**
   * Where each sandbox's state directory is made, named after its container (run-state.ts: a
   * tmpfs): its `run/` and meta.json, `<dir>/run` and `<dir>/meta.json` linking to them; without
   * it, both are in `<dir>` itself.
   */
  runStateDir?: string;
  imagesDir: string;
  busybox: string;
  /** Owner of the writable layer's root, i.e. root inside the sandbox. */
  idBase: number;
  /** How many to keep ready per (image, disk size) at least; 0 prepares on demand only. */
  size: number;
  /**
   * How many at most: the pool keeps as many ready as were taken in the last DEMAND_WINDOW_MS
   * (a burst or a busy spell), between `size` and this (default: `size`, a fixed pool).
   */
  maxSize?: number;
  /**
   * The sandbox's /etc/resolv.conf (what an egress lease resolves with), written into its writable
   * layer before the overlay is mounted (see etcInLayer()); none when undefined.
   */
  resolvConf?: string;
  /**
   * Makes and removes the directories by the host file helper (host-fs.ts); null: by busybox
   * scripts. Default: this host's helper where it runs, else the scripts.
   */
  hostFs?: HostFs | null;
  /** Turns a directory with its layer mounted into a created container (bundle + runtime create). */
  create: (warm: WarmSandbox, image: string, diskMib: number) => Promise<void>;
  /** Deletes a created container that will not be used. */
  discard: (warm: WarmSandbox) => Promise<void>;
  logger: DriverLogger;
  /** Milliseconds since the epoch (default Date.now); demand is measured with it. */
  now?: () => number;
  /**
   * How many sandboxes are made ahead at once, over every (image, disk size) (default 1): each
   * making is a few runtime and mount processes, and on a small host more at once only take CPU
   * from the starts and execs of paid requests (bench/load.bench.mjs).
   */
  concurrency?: number;
  /**
   * True while paid starts are under way (default never): a refill waits for a moment when none
   * is, for at most QUIET_WAIT_MS per sandbox, so that a burst's requests are not starved by the
   * refill their own takes set off; except while the pool is catching up (catchingUp()).
   */
  busy?: () => boolean;
  /** Makings at once while a pool catches up (default: CATCH_UP_CONCURRENCY, at least `concurrency`). */
  catchUpConcurrency?: number;
}

/**
 * Longest a refill waits for a moment without starts under way before making its next sandbox
 * anyway: a steady stream of starts never leaves the pool unrefilled for longer than this.
 */
export const QUIET_WAIT_MS = 1_000;

/**
 * A pool is catching up (see LayerPool.catchingUp) for this long after a take found it empty, while
 * it holds fewer than were taken in the last CATCH_UP_WINDOW_MS.
 */
export const DRY_HOLD_MS = 5_000;
/** The demand a catching-up pool compares what it holds with: the takes of this long. */
export const CATCH_UP_WINDOW_MS = 1_000;
/**
 * Makings at once (over every key) while a pool catches up, when `concurrency` is lower: under a
 * steady stream of rents on a small host one making at a time (~30 ms each when loaded) falls
 * behind, and every take that finds the pool empty makes its sandbox on its own request's path.
 */
export const CATCH_UP_CONCURRENCY = 3;

/** A sandbox made ahead from an image that was replaced or removed while it was being made. */
export class StaleImageError extends Error {
  constructor(readonly image: string) {
    super(`image ${image} changed while a sandbox was being made from it`);
    this.name = 'StaleImageError';
  }
}

/** Names of its makings a pool remembers for close()'s sweep (13 bytes each). */
const MAX_UNSETTLED = 10_000;

/** Makings a take tries when the image keeps changing under it, before it gives up. */
const MAX_STALE_RETRIES = 3;

/**
 * Sandboxes prepared ahead of start(): `layer/` is a tmpfs of the disk size holding the overlay's
 * upper and work dirs, `rootfs/` the overlay of the read-only image, `run/` what the sandbox sees at
 * /run/alacarte, and the container is created and started (its init waiting for a lease, see
 * init-script.ts). All that costs several process spawns; start() then only links the lease to the
 * directory, writes the lease's files and limits, and wakes init.
 */
export class LayerPool {
  private readonly ready = new Map<string, WarmSandbox[]>();
  /** When sandboxes were taken, per (image, disk size): the last maxSize takes at most. */
  private readonly taken = new Map<string, number[]>();
  private readonly filling = new Map<string, Promise<void>>();
  /** Names being prepared right now. */
  private readonly making = new Set<string>();
  /** (image, disk size) pairs asked for ahead of any take (the node's offers). */
  private readonly wanted = new Set<string>();
  /** Takes that found none waiting, per (image, disk size) (madeOnDemand()). */
  private readonly onDemand = new Map<string, number>();
  /** When each (image, disk size) was last taken from. */
  private readonly lastTake = new Map<string, number>();
  /** Real-clock times of the takes of the last CATCH_UP_WINDOW_MS (at most MAX_RECENT_TAKES), per key. */
  private readonly recentTakes = new Map<string, number[]>();
  /** Real-clock time a take last found the pool of each key empty. */
  private readonly lastDry = new Map<string, number>();
  /** Refills being made right now, per key (each claimed by at most one take, see take()). */
  private readonly refilling = new Map<string, number>();
  /** Takes that found the pool empty and wait for a refill under way, first come first served. */
  private readonly claimants = new Map<
    string,
    Array<{
      claim: (warm: WarmSandbox) => void;
      resolve: (warm: WarmSandbox) => void;
      reject: (err: unknown) => void;
    }>
  >();
  /**
   * How many times each image was forgotten (forget()): a sandbox whose making began under an
   * earlier count may show the old tree, and is dropped instead of handed out.
   */
  private readonly generations = new Map<string, number>();
  /**
   * Names this pool began making and did not hand to a take (removed ones too: a program the
   * removal outran may still create its container): the only sandboxes close() may sweep as made
   * for nobody. Another driver over the same directories has its own. At most MAX_UNSETTLED, the
   * oldest dropped.
   */
  private readonly unsettled = new Set<string>();
  private readonly trimTimer: NodeJS.Timeout;
  private trimming: Promise<void> | undefined;
  private closed = false;
  /** Sandboxes being made ahead right now (over every key), and refills waiting for their turn. */
  private slotsUsed = 0;
  private readonly slotQueue: Array<() => void> = [];

  private readonly now: () => number;

  constructor(private readonly options: LayerPoolOptions) {
    this.now = options.now ?? Date.now;
    this.trimTimer = setInterval(() => this.trim(), DEMAND_WINDOW_MS);
    this.trimTimer.unref();
  }

  /**
   * A prepared sandbox, from the pool when one waits, else the next refill under way that no other
   * take has claimed, else made now. `claim` runs at the very moment it leaves the pool (or the
   * making), so that no list() in between takes it for a leftover. The caller calls
   * replenish() once its start is done, so that refilling never competes with the start it serves.
   */
  async take(image: string, diskMib: number, claimed: (warm: WarmSandbox) => void): Promise<WarmSandbox> {
    // Handed to a take, whichever way: no longer the pool's to sweep (see `unsettled`).
    const claim = (warm: WarmSandbox) => {
      this.unsettled.delete(warm.name);
      claimed(warm);
    };
    const key = `${image}-${diskMib}`;
    this.noteTake(key);
    this.lastTake.set(key, this.now());
    const recent = this.recentTakes.get(key) ?? [];
    recent.push(Date.now());
    if (recent.length > MAX_RECENT_TAKES) recent.splice(0, recent.length - MAX_RECENT_TAKES);
    this.recentTakes.set(key, recent);
    const ready = this.ready.get(key)?.shift();
    if (ready) {
      claim(ready);
      return ready;
    }
    this.lastDry.set(key, Date.now());
    // A refill under way that no earlier take has claimed is done sooner than a new making, and
    // takes no more CPU: this take waits for it (see deliver()).
    const waiting = this.claimants.get(key) ?? [];
    if ((this.refilling.get(key) ?? 0) > waiting.length) {
      this.claimants.set(key, waiting);
      return new Promise<WarmSandbox>((resolve, reject) => waiting.push({ claim, resolve, reject }));
    }
    this.onDemand.set(key, (this.onDemand.get(key) ?? 0) + 1);
    return this.prepareFresh(image, diskMib, claim);
  }

  /**
   * prepare() for a take: made again when the image changed during the making (each retry follows
   * a forget(), so the tries are bounded by the image's replacements; capped all the same).
   */
  private async prepareFresh(
    image: string,
    diskMib: number,
    claim: (warm: WarmSandbox) => void,
  ): Promise<WarmSandbox> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.prepare(image, diskMib, claim);
      } catch (e) {
        if (!(e instanceof StaleImageError) || attempt >= MAX_STALE_RETRIES) throw e;
      }
    }
  }

  /**
   * A refill's sandbox, just made: to the first take waiting for one (its `claim` run in this very
   * instant, as for a take from the pool), else into the pool.
   */
  private deliver(key: string, warm: WarmSandbox, list: WarmSandbox[]): void {
    const claimant = this.claimants.get(key)?.shift();
    if (claimant === undefined) {
      list.push(warm);
      return;
    }
    claimant.claim(warm);
    claimant.resolve(warm);
  }

  /**
   * After a refill of `key` ended (made, failed, or the pool closing): takes waiting beyond the
   * refills still under way make their own, as a take that found none under way does.
   */
  private settleClaimants(key: string, image: string, diskMib: number): void {
    const waiting = this.claimants.get(key) ?? [];
    while (waiting.length > (this.refilling.get(key) ?? 0)) {
      const claimant = waiting.pop()!;
      this.onDemand.set(key, (this.onDemand.get(key) ?? 0) + 1);
      this.prepareFresh(image, diskMib, claimant.claim).then(claimant.resolve, claimant.reject);
    }
  }

  /** How many takes of (image, disk size) found none waiting and had one made on their path. */
  madeOnDemand(image: string, diskMib: number): number {
    return this.onDemand.get(`${image}-${diskMib}`) ?? 0;
  }

  /** How many sandboxes of (image, disk size) wait ready now. */
  waiting(image: string, diskMib: number): number {
    return this.ready.get(`${image}-${diskMib}`)?.length ?? 0;
  }

  /** Resolves once no refill is under way (for tests and benchmarks). */
  async settled(): Promise<void> {
    while (this.filling.size > 0) await Promise.allSettled([...this.filling.values()]);
  }

  /** Names this pool began making and did not hand to a take (see `unsettled`). */
  unsettledNames(): ReadonlySet<string> {
    return this.unsettled;
  }

  /** True for a container name this pool holds right now (so list() leaves it alone). */
  holds(name: string): boolean {
    if (this.making.has(name)) return true;
    for (const list of this.ready.values()) if (list.some((w) => w.name === name)) return true;
    return false;
  }

  /** Names of pool containers: `w` and random hex, never a lease id (those start with letters and `_`). */
  static isPoolName(name: string): boolean {
    return /^w[0-9a-f]{12}$/.test(name);
  }

  /** Drops every prepared sandbox; started ones are not touched. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.trimTimer);
    await Promise.allSettled([...this.filling.values(), this.trimming]);
    const all = [...this.ready.values()].flat();
    this.ready.clear();
    await Promise.all(all.map((w) => this.destroy(w)));
  }

  /**
   * Drops the sandboxes prepared for an image (every disk size): the image was replaced or removed,
   * and their root shows the old tree.
   */
  forget(image: string): void {
    // Makings under way began from the old tree too: prepare() drops them when they are done.
    this.generations.set(image, (this.generations.get(image) ?? 0) + 1);
    for (const [key, list] of this.ready) {
      if (!key.startsWith(`${image}-`) || !/^\d+$/.test(key.slice(image.length + 1))) continue;
      const stale = list.splice(0);
      for (const warm of stale) void this.destroy(warm);
    }
  }

  /** Keeps sandboxes of (image, disk size) ready even before the first take (an offer's). */
  want(image: string, diskMib: number): void {
    this.wanted.add(`${image}-${diskMib}`);
  }

  /**
   * Removes, one at a time and oldest first, the ready sandboxes beyond each pool's target over the
   * last REAP_AFTER_MS: those a burst left once its demand has passed, and every one of a pool
   * nobody takes from any more.
   * Runs every DEMAND_WINDOW_MS, off any start's path.
   */
  trim(): Promise<void> {
    this.trimming ??= (async () => {
      for (const [key, list] of this.ready) {
        const surplus = list.length - this.target(key, REAP_AFTER_MS);
        // Oldest first: they are the nearest to ending at their provisional deadline.
        for (const warm of list.splice(0, Math.max(0, surplus))) {
          if (this.closed) list.push(warm);
          else await this.destroy(warm);
        }
      }
    })().finally(() => {
      this.trimming = undefined;
    });
    return this.trimming;
  }

  /**
   * How many sandboxes of (image, disk size) the pool aims to hold ready now (see maxSize): as many
   * as were taken in the last `windowMs`.
   */
  target(key: string, windowMs = DEMAND_WINDOW_MS): number {
    const last = this.lastTake.get(key);
    if (!this.wanted.has(key) && (last === undefined || this.now() - last > IDLE_KEY_MS)) return 0;
    const { size } = this.options;
    const max = Math.max(size, this.options.maxSize ?? size);
    if (size === 0 || max === size) return size;
    const since = this.now() - windowMs;
    const recent = (this.taken.get(key) ?? []).filter((t) => t >= since).length;
    return Math.min(max, Math.max(size, recent));
  }

  private noteTake(key: string): void {
    const max = this.options.maxSize ?? this.options.size;
    if (max <= this.options.size) return;
    const list = this.taken.get(key) ?? [];
    list.push(this.now());
    if (list.length > max) list.splice(0, list.length - max);
    this.taken.set(key, list);
  }

  /**
   * True while the pool of `key` is not keeping up with a steady demand: a take found it empty in
   * the last DRY_HOLD_MS, and it holds fewer than were taken in the last CATCH_UP_WINDOW_MS. Making
   * ahead then costs the paid requests nothing they would not pay anyway (each take that finds the
   * pool empty makes its sandbox on its own path): its refills neither wait for a quiet moment nor
   * keep to `concurrency` (up to catchUpConcurrency at once).
   */
  catchingUp(key: string): boolean {
    const now = Date.now();
    const dry = this.lastDry.get(key);
    if (dry === undefined || now - dry > DRY_HOLD_MS) return false;
    const recent = this.recentTakes.get(key) ?? [];
    let within = 0;
    for (let i = recent.length - 1; i >= 0 && now - recent[i]! <= CATCH_UP_WINDOW_MS; i--) within++;
    return (this.ready.get(key)?.length ?? 0) < within;
  }

  /**
   * Prepares in the background until the pool for (image, disk size) holds its target again,
   * `concurrency` at a time over every key and each after a moment without starts under way (see
   * slot()): on a small host more at once only take CPU from the starts and execs of paid requests
   * (measured: bench/load.bench.mjs, bench/profile-burst.mjs). A pool that is catching up
   * (catchingUp()) is refilled at once, up to catchUpConcurrency at a time.
   */
  replenish(image: string, diskMib: number): void {
    const key = `${image}-${diskMib}`;
    if (this.closed || this.options.size === 0 || this.filling.has(key)) return;
    const run = async () => {
      const list = this.ready.get(key) ?? [];
      this.ready.set(key, list);
      let making = 0;
      const missing = () => this.target(key) - list.length - making;
      const worker = async () => {
        while (!this.closed && missing() > 0) {
          await this.slot(() => this.catchingUp(key));
          try {
            if (this.closed || missing() <= 0) break;
            making++;
            this.refilling.set(key, (this.refilling.get(key) ?? 0) + 1);
            // Into the pool (or to a take waiting for it) in the same instant it stops being "in
            // the making" (see holds()); close() waits for this loop, then removes everything in
            // the pool.
            await this.prepare(image, diskMib, (warm) => this.deliver(key, warm, list))
              .catch((e: unknown) => {
                // Dropped (the image changed meanwhile): the loop makes one from the new tree.
                if (!(e instanceof StaleImageError)) throw e;
              })
              .finally(() => {
                making--;
                this.refilling.set(key, (this.refilling.get(key) ?? 1) - 1);
                this.settleClaimants(key, image, diskMib);
              });
          } finally {
            this.releaseSlot();
          }
        }
      };
      // One worker per place a catching-up pool may use; otherwise they queue for `concurrency`.
      await Promise.all(Array.from({ length: this.catchUpConcurrency() }, () => worker()));
    };
    const p = run()
      .catch((e: unknown) =>
        this.options.logger.warn(`alacarte: preparing a ${key} sandbox failed: ${String(e)}`),
      )
      .finally(() => this.filling.delete(key));
    this.filling.set(key, p);
  }

  private concurrency(): number {
    return Math.max(1, this.options.concurrency ?? 1);
  }

  private catchUpConcurrency(): number {
    return Math.max(this.concurrency(), this.options.catchUpConcurrency ?? CATCH_UP_CONCURRENCY);
  }

  /**
   * Waits for a moment without paid starts under way (QUIET_WAIT_MS at most), then for one of the
   * `concurrency` places to make a sandbox ahead; while `catchingUp()`, neither (up to
   * catchUpConcurrency places).
   */
  private async slot(catchingUp: () => boolean): Promise<void> {
    const busy = this.options.busy;
    for (;;) {
      // The real clock: `now` may be a test's, standing still.
      const since = Date.now();
      while (busy?.() && !catchingUp() && !this.closed && Date.now() - since < QUIET_WAIT_MS)
        await new Promise((r) => setTimeout(r, 10));
      const places = catchingUp() ? this.catchUpConcurrency() : this.concurrency();
      if (this.closed || this.slotsUsed < places) {
        this.slotsUsed++;
        return;
      }
      // Woken by releaseSlot(); then a quiet moment again, unless catching up.
      await new Promise<void>((r) => this.slotQueue.push(r));
    }
  }

  private releaseSlot(): void {
    this.slotsUsed--;
    // Every waiter looks again (a few per pool at most): one that waits for a quiet moment must
    // not hold back one that is catching up.
    for (const wake of this.slotQueue.splice(0)) wake();
  }

  private async destroy(warm: WarmSandbox): Promise<void> {
    await this.options.discard(warm).catch(() => {});
    await destroyDir(warm.dir, this.options.busybox, this.fs).catch(() => {});
  }

  private async prepare(
    image: string,
    diskMib: number,
    claim: (warm: WarmSandbox) => void,
  ): Promise<WarmSandbox> {
    const { runtimeDir } = this.options;
    const generation = this.generations.get(image) ?? 0;
    const name = `w${randomBytes(6).toString('hex')}`;
    this.making.add(name);
    if (this.unsettled.size >= MAX_UNSETTLED) {
      const oldest = this.unsettled.values().next().value;
      if (oldest !== undefined) this.unsettled.delete(oldest);
    }
    this.unsettled.add(name);
    try {
      const warm = await this.make(name, join(runtimeDir, name), image, diskMib);
      if ((this.generations.get(image) ?? 0) !== generation) {
        // The image was replaced or removed while this one was being made (forget()).
        await this.destroy(warm);
        throw new StaleImageError(image);
      }
      claim(warm);
      return warm;
    } finally {
      this.making.delete(name);
    }
  }

  /** The host file helper this pool makes and removes directories with, null for the scripts. */
  private get fs(): HostFs | null {
    return this.options.hostFs === undefined ? (hostFs() ?? null) : this.options.hostFs;
  }

  private async make(name: string, dir: string, image: string, diskMib: number): Promise<WarmSandbox> {
    // A tmpfs inode costs kernel memory; cap the count in proportion to the disk size.
    const inodes = Math.max(4096, diskMib * 256);
    const fs = this.fs;
    const making: Making = { name, dir, image, diskMib, inodes };
    const made = fs ? await this.mountByHelper(fs, making) : await this.mountByScript(making);
    const warm = { dir, name };
    if (made === 'taken') {
      // Not ours to remove, ever.
      this.unsettled.delete(name);
      throw new Error(`a sandbox directory ${name} exists already`);
    }
    try {
      await this.options.create(warm, image, diskMib);
    } catch (e) {
      await this.destroy(warm);
      throw e;
    }
    return warm;
  }

  /** The directory and its writable layer by the host file helper (the same steps as the script). */
  private async mountByHelper(
    fs: HostFs,
    { name, dir, image, diskMib, inodes }: Making,
  ): Promise<'made' | 'taken'> {
    const { imagesDir, runStateDir, idBase, resolvConf } = this.options;
    try {
      return await fs.make({
        dir,
        lower: join(imagesDir, image),
        runState: runStateDir === undefined ? undefined : join(runStateDir, name),
        diskMib,
        inodes,
        id: idBase,
        resolvConf,
      });
    } catch (e) {
      // Part-way (or the helper died): nothing but this making knows its name, so it is removed
      // here, best effort; the next driver's list() sweeps what is still left.
      await destroyDir(dir, this.options.busybox, fs).catch(() => {});
      throw new Error(`mounting the writable layer failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** The directory and its writable layer by one busybox shell. */
  private async mountByScript({ name, dir, image, diskMib, inodes }: Making): Promise<'made' | 'taken'> {
    const { imagesDir, busybox, idBase } = this.options;
    // Each line a process of its own (busybox forks for its applets): as few as will do. The
    // sandbox's own directory too is made there, off the node's thread: a new inode in the data
    // directory is not cheap on ext4 with many recently removed (bench/PROFILES.md; 1.4 ms of the
    // node's thread per lease at 8 renters when made here). Exit 97 (no command here exits so):
    // the name is taken, not ours to remove.
    const script = [
      'set -e',
      'umask 022',
      'mkdir -m 0755 "$1" || exit 97',
      `ln -s "\${1##*/}" "$1/${LEASE_LINK}"`,
      // The run directory: the sandbox directory's own run/, or in its directory in the run state
      // ($4) with the meta.json start() writes beside it, both linked from the sandbox's directory
      // (run-state.ts).
      'mkdir -m 0755 "$1/layer" "$1/rootfs"',
      'if [ -z "$4" ]; then mkdir -m 0755 "$1/run"; else',
      '  mkdir -m 0711 "$4"; mkdir -m 0755 "$4/run"',
      '  ln -s "$4/run" "$1/run"; ln -s "$4/meta.json" "$1/meta.json"',
      'fi',
      'mkdir -m 0755 "$1/run/bin"',
      // The exec agent's files (exec-agent.ts): names inside are found, not listed.
      'mkdir -m 0711 "$1/run/x"',
      `mount -t tmpfs -o size=${diskMib}m,nr_inodes=${inodes},mode=0755 tmpfs "$1/layer"`,
      'mkdir -m 0755 "$1/layer/upper" "$1/layer/work"',
      // init waits on wake, its starter on start (see init-script.ts), the exec agent on the
      // others; owned by root inside so that they may open them (init opens its own as root).
      `mkfifo -m 0600 "$1/run/${WAKE_FIFO}" "$1/run/${START_FIFO}" "$1/run/agent-in" "$1/run/exec-in" "$1/run/agent-out"`,
      'r=',
      ...(this.options.resolvConf === undefined ? [] : [etcInLayer(idBase)]),
      `chown ${idBase}:${idBase} "$1/layer/upper" "$1/run/${WAKE_FIFO}" "$1/run/${START_FIFO}" "$1/run/agent-in" "$1/run/exec-in" "$1/run/agent-out" \${r:+"$r"}`,
      `mount -t overlay overlay -o "lowerdir=$2,upperdir=$1/layer/upper,workdir=$1/layer/work" "$1/rootfs"`,
    ].join('\n');
    const r = await runProcess(busybox, [
      'sh',
      '-c',
      script,
      'sh',
      dir,
      join(imagesDir, image),
      this.options.resolvConf ?? '',
      this.options.runStateDir === undefined ? '' : join(this.options.runStateDir, name),
    ]).catch(async (e: unknown) => {
      // The shell that ran it died (spawner.ts; a signal, the OOM killer): how far the script got
      // is unknown, and nothing but this making knows its name; once this rejects, no close() of
      // the pool, no take and no list() of this process would remove what it mounted. Removed here
      // (through a new shell), best effort: the next driver's list() sweeps what is still left.
      await destroyDir(dir, busybox, null).catch(() => {});
      throw e;
    });
    if (r.code === 97) return 'taken';
    if (r.code !== 0) {
      await destroyDir(dir, busybox, null);
      throw new Error(`mounting the writable layer failed: ${r.stderr.trim()}`);
    }
    return 'made';
  }
}

/** One sandbox directory being made: its name and path, the image under it, its layer's size and inodes. */
interface Making {
  name: string;
  dir: string;
  image: string;
  diskMib: number;
  inodes: number;
}

/**
 * Shell lines (for make()'s script: $1 the sandbox directory, $2 the image's root, $3 the text)
 * that put /etc/resolv.conf into the writable layer's upper directory before the overlay is
 * mounted, with what the sandbox's root would get from `mkdir -p /etc && rm -f /etc/resolv.conf &&
 * printf %s "$3" > /etc/resolv.conf` run inside (as it was, at the cost of a runtime exec per
 * sandbox, ~5 ms of CPU: bench/RESULTS.md): an `etc` directory in the upper layer is merged by
 * overlayfs with the image's (owner and mode copied from it, or root inside and 0755 when the image
 * has none), and the file hides the image's own (a link included), owned by root inside, 0644
 * (the caller's script sets umask 022, and chowns "$r", the file, when set).
 * Nothing of the sandbox runs yet, so nothing inside can race these host-side writes; and nothing
 * follows a link of the image: an image whose /etc is a link is left alone here (the driver writes
 * the file from inside then, see etcIsLink()), one whose /etc is not a directory or whose
 * resolv.conf is a directory gets none, as from inside.
 */
export function etcInLayer(idBase: number): string {
  return `if [ -n "$3" ] && [ ! -L "$2/etc" ] && { [ -d "$2/etc" ] || [ ! -e "$2/etc" ]; }; then
  if [ -d "$2/etc" ]; then
    o=$(stat -c '%u:%g %a' "$2/etc")
    mkdir -m "\${o#* }" "$1/layer/upper/etc"
    chown "\${o% *}" "$1/layer/upper/etc"
  else
    mkdir -m 0755 "$1/layer/upper/etc"
    chown ${idBase}:${idBase} "$1/layer/upper/etc"
  fi
  if [ ! -d "$2/etc/resolv.conf" ] || [ -L "$2/etc/resolv.conf" ]; then
    printf %s "$3" > "$1/layer/upper/etc/resolv.conf"
    r="$1/layer/upper/etc/resolv.conf"
  fi
fi`;
}

/** True when an image's /etc is a symbolic link: etcInLayer() leaves such an image's resolv.conf alone. */
export function etcIsLink(imageRoot: string): boolean {
  try {
    return lstatSync(join(imageRoot, 'etc')).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Unmounts whatever is mounted at or under dir (deepest first), then removes it; tolerant of
 * half-made dirs. Off the node's thread: by the host file helper (host-fs.ts, system calls, no
 * process per step) where it runs (`fs`, this host's by default; null for none), else by one
 * busybox shell running DESTROY_SCRIPT; both do the same steps. Reading the host's mount table
 * costs milliseconds of kernel time per read on a host with a few thousand mounts (it was a third
 * of the node's thread per lease under load, bench/RESULTS.md), so the usual case (the pool's two
 * mounts, `rootfs` and `layer`) unmounts those and checks by device number that no directory left
 * under dir is on another file system; only then is the table read, to unmount the rest. Never
 * recurses into anything still mounted: that would delete inside it.
 */
export async function destroyDir(
  dir: string,
  busybox: string,
  fs: HostFs | null = hostFs() ?? null,
): Promise<void> {
  if (fs) return fs.destroy(dir);
  const r = await runProcess(busybox, ['sh', '-c', DESTROY_SCRIPT, 'sh', dir]);
  if (r.code !== 0) throw new Error(r.stderr.trim() || `could not remove ${dir}`);
}

/**
 * destroyDir() after the runtime's `delete --force` of the container: `runtime.remove` (the
 * driver's runtime calls, which start the runtime directly and gather deletes) then the host file
 * helper, or without a helper both in one busybox shell (one host program started from the node
 * instead of two, for every lease's removal). A container the runtime does not know (deleted
 * already) is no error; any other failure of the delete leaves the directory as it is and throws
 * with the runtime's message.
 */
export async function deleteThenDestroyDir(
  dir: string,
  busybox: string,
  runtime: { path: string; stateDir: string; containerId: string; remove: () => Promise<void> },
  fs: HostFs | null = hostFs() ?? null,
): Promise<void> {
  if (fs) {
    // Not through a shell: a busybox start and a fork less per removal (bench/PROFILES.md, session 19).
    await runtime.remove();
    return fs.destroy(dir);
  }
  const r = await runProcess(busybox, [
    'sh',
    '-c',
    DELETE_SCRIPT + DESTROY_SCRIPT,
    'sh',
    dir,
    runtime.path,
    runtime.stateDir,
    runtime.containerId,
  ]);
  if (r.code !== 0) throw new Error(r.stderr.trim() || `could not remove ${dir}`);
}

const DELETE_SCRIPT = `e=$("$2" --root "$3" delete --force "$4" 2>&1 >/dev/null) || case "$e" in
  *[Nn][Oo][Tt]" "[Ee][Xx][Ii][Ss][Tt]*|*[Nn][Oo]" "[Ss][Uu][Cc][Hh]*) ;;
  *) printf 'runtime delete failed: %s\n' "$e" >&2; exit 1 ;;
esac
`;

const DESTROY_SCRIPT = `set -u
d=$1
[ -e "$d" ] || [ -L "$d" ] || exit 0
# The sandbox's directory in the run state (run-state.ts; run/ is the host's link to its run/,
# named after the sandbox), first: without the link nothing would find it again (list() sweeps what
# a crash between the two left).
if [ -L "$d/run" ]; then
  r=$(readlink "$d/run")
  case $r in /*/"\${d##*/}"/run) rm -rf "\${r%/run}" ;; esac
fi
umount "$d/rootfs" 2>/dev/null
umount "$d/layer" 2>/dev/null
under() { awk -v d="$d" '$5 == d || index($5, d "/") == 1 { print length($5), $5 }' /proc/self/mountinfo; }
# The parent, not "$d/..": another remover (a second driver reconciling the same directory after a
# crash) may take "$d" away at any moment, and then there is nothing left to do.
p=$(stat -c %d "\${d%/*}/") || exit 1
if [ -d "$d" ] && [ ! -L "$d" ] && [ -n "$(find "$d" -type d -exec stat -c %d {} + 2>/dev/null | grep -vx "$p")" ]; then
  for m in $(under | sort -rn | cut -d" " -f2); do umount "$m" 2>/dev/null || umount -l "$m"; done
  if [ -n "$(under)" ]; then echo "could not unmount everything under $d" >&2; exit 1; fi
fi
# busybox rm fails on entries a concurrent remover took first, "$d" itself included: done as soon
# as "$d" is gone, whoever removed it; a few tries, since each may lose a race.
for _ in 1 2 3 4 5; do
  rm -rf "$d" 2>/dev/null
  [ -e "$d" ] || [ -L "$d" ] || exit 0
done
rm -rf "$d" || { [ ! -e "$d" ] && [ ! -L "$d" ]; }
`;
