import { randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { IMAGE_NAME_PATTERN, SANDBOX_ID_PATTERN } from '../../core/lease-request.js';
import type { ImageDetail } from '../compute-driver.js';
import { type ImageConfig, imageConfigFile, readImageConfig, writeImageConfig } from './image-config.js';
import { shiftMark, shiftOwnership } from './preflight.js';

export type { ImageDetail } from '../compute-driver.js';

/** What `alacarte image list` shows beyond the offer's details. */
export interface ImageListing extends ImageDetail {
  source: string;
}

/** Expected refusals of the image commands, each with a sentence for the operator. */
export class ImageError extends Error {
  override readonly name = 'ImageError';
}

const BUILT_IN: Record<string, string> = {
  busybox: "BusyBox: a small shell and the basic Unix tools (the host's static busybox)",
};

/**
 * The images directory of the crun driver (`<dataDir>/images`): one root filesystem per directory
 * named after the image, its config (image-config.ts) and id-shift mark beside it as dot files.
 * Names are what IMAGE_NAME_PATTERN accepts; other entries (dot files, staging directories) are
 * not images. Used by the node (what it offers, re-read when the directory changes, so a pulled
 * image is offered without a restart) and by the `alacarte image` commands.
 */
export class ImageStore {
  private cache: { mtimeMs: number; list: ImageListing[] } | undefined;
  /** Sizes of images without a recorded size (busybox, dropped-in trees), by name and inode. */
  private readonly sizes = new Map<string, number>();

  constructor(
    readonly imagesDir: string,
    /** The driver's sandboxes (`<dataDir>/sandboxes`): where a lease's use of an image shows. */
    private readonly runtimeDir: string,
  ) {}

  /** Every image, by name. Cheap while the directory is unchanged (one stat). */
  list(): ImageListing[] {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.imagesDir).mtimeMs;
    } catch {
      return [];
    }
    if (this.cache?.mtimeMs === mtimeMs) return this.cache.list;
    const list: ImageListing[] = [];
    for (const entry of readdirSync(this.imagesDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !IMAGE_NAME_PATTERN.test(entry.name)) continue;
      const dir = join(this.imagesDir, entry.name);
      let config: ImageConfig;
      try {
        config = readImageConfig(dir);
      } catch {
        continue;
      }
      list.push({
        name: entry.name,
        description:
          config.description || BUILT_IN[entry.name] || 'a root filesystem from the images directory',
        size_mib: config.size_mib ?? this.measured(dir),
        source: config.source ?? (BUILT_IN[entry.name] ? 'built in' : 'dropped in'),
      });
    }
    list.sort((a, b) => a.name.localeCompare(b.name));
    this.cache = { mtimeMs, list };
    return list;
  }

  has(name: string): boolean {
    return IMAGE_NAME_PATTERN.test(name) && existsSync(join(this.imagesDir, name));
  }

  /** The lease ids whose sandboxes (running, or not yet cleaned up) were made from this image. */
  leasesUsing(name: string): string[] {
    let entries: string[];
    try {
      entries = readdirSync(this.runtimeDir);
    } catch {
      return [];
    }
    const out: string[] = [];
    for (const entry of entries) {
      // Lease ids are links to their sandbox's directory; pool sandboxes are not leased yet.
      if (!SANDBOX_ID_PATTERN.test(entry) || !isLink(join(this.runtimeDir, entry))) continue;
      try {
        const meta = JSON.parse(readFileSync(join(this.runtimeDir, entry, 'meta.json'), 'utf8')) as {
          image?: unknown;
        };
        if (meta.image === name) out.push(entry);
      } catch {
        // a sandbox being set up or removed
      }
    }
    return out.sort();
  }

  /**
   * A fresh directory on the images directory's file system, for building or unpacking an image
   * that install() then moves into place (a rename, so a node never sees half an image).
   */
  stagingDir(): string {
    mkdirSync(this.imagesDir, { recursive: true, mode: 0o755 });
    const dir = join(this.imagesDir, `.staging-${randomBytes(6).toString('hex')}`);
    // Traversable, so that apt's _apt user can reach the tree mmdebstrap builds in it.
    mkdirSync(dir, { mode: 0o711 });
    return dir;
  }

  /**
   * Makes `rootfs` (a directory from stagingDir) the image `name`: removes its device nodes,
   * shifts its owners by idBase (driver README), records its size and config, and renames it into
   * place. Refuses a name in use.
   */
  install(name: string, rootfs: string, config: ImageConfig, idBase: number): ImageListing {
    if (!IMAGE_NAME_PATTERN.test(name))
      throw new ImageError(`'${name}' is not an image name (a-z, 0-9, '.', '_', '-'; up to 64)`);
    const target = join(this.imagesDir, name);
    if (existsSync(target))
      throw new ImageError(`image ${name} exists already: remove it first (alacarte image rm ${name})`);
    removeDeviceNodes(rootfs);
    shiftOwnership(rootfs, idBase);
    const sized = { ...config, size_mib: treeMib(rootfs) };
    // Config and mark first: the image appears (rename) only once all of it is there.
    writeImageConfig(target, sized);
    writeFileSync(shiftMark(target), `${idBase}\n`);
    try {
      renameSync(rootfs, target);
    } catch (e) {
      throw new ImageError(`image ${name} could not be moved into place: ${(e as Error).message}`);
    }
    this.cache = undefined;
    return {
      name,
      description: sized.description,
      size_mib: sized.size_mib,
      source: sized.source ?? '',
    };
  }

  /**
   * Removes an image. Refused while a lease's sandbox uses it (its files are that sandbox's root):
   * those found in the runtime directory (crun's), and `usedBy`, the lease ids the caller knows of
   * otherwise (the node's store: LXD's, another replica's).
   * A running node stops offering it at once; sandboxes it made ahead from it are never handed out
   * (the driver notices the image is gone or replaced).
   */
  remove(name: string, usedBy: readonly string[] = []): void {
    if (!this.has(name)) throw new ImageError(`no image ${name} (see alacarte image list)`);
    const users = [...new Set([...this.leasesUsing(name), ...usedBy])].sort();
    if (users.length > 0) {
      throw new ImageError(
        `image ${name} is in use by ${users.length} lease(s): ${users.slice(0, 5).join(', ')}${users.length > 5 ? ', …' : ''}; ` +
          'it can be removed once they have ended',
      );
    }
    const target = join(this.imagesDir, name);
    // Out of sight first (atomic), then deleted: a node never offers a half-deleted image.
    const doomed = join(this.imagesDir, `.removed-${randomBytes(6).toString('hex')}`);
    renameSync(target, doomed);
    rmSync(imageConfigFile(target), { force: true });
    rmSync(shiftMark(target), { force: true });
    rmSync(doomed, { recursive: true, force: true });
    this.cache = undefined;
  }

  /** Removes staging and removal leftovers of interrupted commands. */
  removeLeftovers(): void {
    try {
      for (const e of readdirSync(this.imagesDir)) {
        if (/^\.(staging|removed)-[0-9a-f]{12}$/.test(e))
          rmSync(join(this.imagesDir, e), { recursive: true, force: true });
      }
    } catch {
      // no images directory yet
    }
  }

  private measured(dir: string): number {
    const key = `${dir}:${statSync(dir).ino}`;
    let mib = this.sizes.get(key);
    if (mib === undefined) {
      mib = treeMib(dir);
      this.sizes.set(key, mib);
    }
    return mib;
  }
}

/**
 * Removes block and character devices from a staged tree. A sandbox's /dev is its own tmpfs and
 * its device cgroup refuses other devices anyway; an image has no business shipping a node for a
 * host disk elsewhere in its tree.
 */
function removeDeviceNodes(root: string): void {
  const stack = [root];
  for (let path = stack.pop(); path !== undefined; path = stack.pop()) {
    const st = lstatSync(path);
    if (st.isBlockDevice() || st.isCharacterDevice()) rmSync(path);
    else if (st.isDirectory()) for (const e of readdirSync(path)) stack.push(join(path, e));
  }
}

/** Disk space a tree takes, in MiB rounded up; hard links counted once, links never followed. */
export function treeMib(root: string): number {
  const seen = new Set<string>();
  let bytes = 0;
  const stack = [root];
  for (let path = stack.pop(); path !== undefined; path = stack.pop()) {
    const st = lstatSync(path, { bigint: true });
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) continue;
    seen.add(key);
    bytes += Number(st.blocks) * 512;
    if (st.isDirectory()) for (const e of readdirSync(path)) stack.push(join(path, e));
  }
  return Math.ceil(bytes / 2 ** 20);
}

function isLink(path: string): boolean {
  try {
    readlinkSync(path);
    return true;
  } catch {
    return false;
  }
}
