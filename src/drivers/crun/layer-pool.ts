import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverLogger } from './crun-options.js';
import { mountsUnder } from './mounts.js';
import { runProcess } from './run-process.js';

export interface LayerPoolOptions {
  /** Prepared layers wait here until a start() takes one. */
  warmDir: string;
  imagesDir: string;
  busybox: string;
  /** Owner of the writable layer's root, i.e. root inside the sandbox. */
  idBase: number;
  /** How many prepared layers to keep per (image, disk size); 0 prepares on demand only. */
  size: number;
  logger: DriverLogger;
}

/**
 * A sandbox directory in the making: `layer/` is a tmpfs of the disk size holding the overlay's
 * upper and work dirs, `rootfs/` the overlay of the read-only image, `run/` what the sandbox sees at
 * /run/alacarte. Mounting costs a few milliseconds of process spawns, so layers are prepared ahead
 * and start() only renames one into place (mounts follow their directory on rename).
 */
export class LayerPool {
  private readonly ready = new Map<string, string[]>();
  private readonly filling = new Map<string, Promise<void>>();
  private closed = false;

  constructor(private readonly options: LayerPoolOptions) {}

  /**
   * A prepared directory, from the pool when one waits, else made now. The caller calls replenish()
   * once its start is done, so that refilling never competes with the start it serves.
   */
  async take(image: string, diskMib: number): Promise<string> {
    return this.ready.get(`${image}-${diskMib}`)?.shift() ?? (await this.prepare(image, diskMib));
  }

  /** Drops every prepared layer; sandboxes already started are not touched. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.filling.values()]);
    const dirs = [...this.ready.values()].flat();
    this.ready.clear();
    await Promise.all(dirs.map((d) => destroyDir(d, this.options.busybox)));
  }

  /** Removes prepared layers a previous process left behind. */
  async sweep(): Promise<void> {
    let names: string[] = [];
    try {
      names = readdirSync(this.options.warmDir);
    } catch {
      return;
    }
    await Promise.all(names.map((n) => destroyDir(join(this.options.warmDir, n), this.options.busybox)));
  }

  /** Prepares layers in the background until the pool for (image, disk size) is full again. */
  replenish(image: string, diskMib: number): void {
    const key = `${image}-${diskMib}`;
    if (this.closed || this.options.size === 0 || this.filling.has(key)) return;
    const run = async () => {
      const list = this.ready.get(key) ?? [];
      this.ready.set(key, list);
      while (!this.closed && list.length < this.options.size) {
        list.push(await this.prepare(image, diskMib));
      }
    };
    const p = run()
      .catch((e: unknown) =>
        this.options.logger.warn(`alacarte: preparing a ${key} layer failed: ${String(e)}`),
      )
      .finally(() => this.filling.delete(key));
    this.filling.set(key, p);
  }

  private async prepare(image: string, diskMib: number): Promise<string> {
    const { warmDir, imagesDir, busybox, idBase } = this.options;
    const dir = join(warmDir, `${image}-${diskMib}-${randomBytes(6).toString('hex')}`);
    for (const sub of ['layer', 'rootfs', 'run/bin'])
      mkdirSync(join(dir, sub), { recursive: true, mode: 0o755 });
    // A tmpfs inode costs kernel memory; cap the count in proportion to the disk size.
    const inodes = Math.max(4096, diskMib * 256);
    const script = [
      'set -e',
      `mount -t tmpfs -o size=${diskMib}m,nr_inodes=${inodes},mode=0755 tmpfs "$1/layer"`,
      'mkdir -m 0755 "$1/layer/upper" "$1/layer/work"',
      `chown ${idBase}:${idBase} "$1/layer/upper"`,
      // init waits on this FIFO (see init-script.ts); owned by root inside so that it may open it.
      'mkfifo -m 0600 "$1/run/wake"',
      `chown ${idBase}:${idBase} "$1/run/wake"`,
      `mount -t overlay overlay -o "lowerdir=$2,upperdir=$1/layer/upper,workdir=$1/layer/work" "$1/rootfs"`,
    ].join('\n');
    const r = await runProcess(busybox, ['sh', '-c', script, 'sh', dir, join(imagesDir, image)]);
    if (r.code !== 0) {
      await destroyDir(dir, busybox);
      throw new Error(`mounting the writable layer failed: ${r.stderr.trim()}`);
    }
    return dir;
  }
}

/** Unmounts whatever is mounted under dir (deepest first), then removes it; tolerant of half-made dirs. */
export async function destroyDir(dir: string, busybox: string): Promise<void> {
  const points = mountsUnder(dir);
  if (points.length > 0) {
    const r = await runProcess(busybox, ['umount', ...points]);
    if (r.code !== 0) await runProcess(busybox, ['umount', '-l', ...mountsUnder(dir)]);
  }
  // Never recurse into something still mounted: that would delete inside it.
  if (mountsUnder(dir).length > 0) throw new Error(`could not unmount everything under ${dir}`);
  rmSync(dir, { recursive: true, force: true });
}
