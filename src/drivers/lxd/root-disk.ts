import { lstatSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * How an LXD storage pool driver treats an instance's root disk `size`:
 * - `unenforced`: recorded, never enforced (`dir`: no quotas without project quotas on the host's
 *   file system). A tenant can fill the pool's file system.
 * - `writes`: bounds what the instance writes beyond its image (`zfs`: the clone's own `quota`).
 * - `whole`: bounds the whole root file system, the image's files included (`btrfs`: the qgroup's
 *   referenced bytes; `lvm`, `ceph`: a block device of that size).
 * Unknown drivers are taken as `whole`, the side on which a lease gets at most its disk.
 */
export type RootSizeKind = 'unenforced' | 'writes' | 'whole';

/** The kind for LXD's `driver` field of GET /1.0/storage-pools/<name>. */
export function rootSizeKind(poolDriver: string): RootSizeKind {
  if (poolDriver === 'dir') return 'unenforced';
  if (poolDriver === 'zfs') return 'writes';
  return 'whole';
}

/** btrfs keeps a file of at most this many bytes inline in its metadata (max_inline default). */
const INLINE_MAX = 2048;
/**
 * Metadata btrfs spends on an entry besides twice its name (inode item, inode reference, directory
 * item and index, extent item): ~490 B measured on Debian's root and on busybox's, taken a little
 * lower so that the footprint stays a lower bound.
 */
const ENTRY_BYTES = 450;
const BLOCK = 4096;

/**
 * A lower bound of the bytes an image tree takes in an LXD root volume once unpacked (btrfs's
 * referenced bytes: 4 KiB blocks of each file above 2 KiB, counted once per inode, small files and
 * link targets inline, a little metadata per entry). Measured against btrfs on Debian's root
 * (229 MiB, 9300 entries: 0.9 MiB under) and busybox (2 MiB: 12 KiB under). A lower bound, so
 * that a `whole` root disk of `footprint + diskMib` lets a lease write at most `diskMib`.
 * Walks the tree (iteratively: its depth does not grow the stack); throws when `dir` is not there.
 */
export function imageFootprintBytes(dir: string): number {
  const seen = new Set<string>();
  let bytes = 0;
  const stack = [dir];
  for (let path = stack.pop(); path !== undefined; path = stack.pop()) {
    const st = lstatSync(path);
    bytes += ENTRY_BYTES + (path === dir ? 0 : 2 * (path.length - path.lastIndexOf('/') - 1));
    if (st.isDirectory()) {
      for (const e of readdirSync(path)) stack.push(join(path, e));
    } else if (st.isSymbolicLink()) {
      bytes += readlinkSync(path).length;
    } else if (st.isFile()) {
      const inode = `${st.dev}:${st.ino}`;
      if (st.nlink > 1) {
        if (seen.has(inode)) continue;
        seen.add(inode);
      }
      // Sparse files take only their allocated blocks.
      bytes +=
        st.size <= INLINE_MAX ? st.size : Math.min(Math.ceil(st.size / BLOCK) * BLOCK, st.blocks * 512);
    }
  }
  return bytes;
}

/**
 * The root disk `size` (LXD's byte string) that lets an instance of the image in `imageDir` write
 * `diskMib` MiB: on a `whole` pool the image's footprint plus the disk, else the disk alone.
 * `footprints` caches each tree's footprint by its path, inode and change time (a rebuilt image is
 * measured anew).
 */
export function rootDiskSize(
  kind: RootSizeKind,
  imageDir: string,
  diskMib: number,
  footprints: Map<string, number>,
): string {
  const disk = diskMib * 2 ** 20;
  if (kind !== 'whole') return String(disk);
  const st = statSync(imageDir);
  const key = `${imageDir}\0${st.ino}\0${st.mtimeMs}`;
  let footprint = footprints.get(key);
  if (footprint === undefined) {
    footprint = imageFootprintBytes(imageDir);
    // One entry per image of the store, each measured once.
    if (footprints.size >= 256) footprints.clear();
    footprints.set(key, footprint);
  }
  return String(footprint + disk);
}
