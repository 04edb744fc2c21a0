import {
  closeSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageFootprintBytes, rootDiskSize, rootSizeKind } from '../../../src/drivers/lxd/root-disk.js';

const base = mkdtempSync(join(tmpdir(), 'alacarte-root-disk-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** A small image tree: a 10 000-byte file and a hard link to it, a 100-byte file, a symlink, a sparse 1 GiB file. */
function tree(name: string): string {
  const root = join(base, name);
  mkdirSync(join(root, 'bin'), { recursive: true });
  writeFileSync(join(root, 'bin', 'big'), Buffer.alloc(10_000, 1));
  linkSync(join(root, 'bin', 'big'), join(root, 'bin', 'big2'));
  writeFileSync(join(root, 'small'), Buffer.alloc(100, 1));
  symlinkSync('bin/big', join(root, 'link'));
  const fd = openSync(join(root, 'sparse'), 'w');
  ftruncateSync(fd, 2 ** 30);
  closeSync(fd);
  return root;
}

describe('LXD root disk size', () => {
  it('tells which pools enforce a size, and how', () => {
    expect(rootSizeKind('dir')).toBe('unenforced');
    expect(rootSizeKind('zfs')).toBe('writes');
    expect(rootSizeKind('btrfs')).toBe('whole');
    expect(rootSizeKind('lvm')).toBe('whole');
    // Unknown: the side on which a lease gets at most its disk.
    expect(rootSizeKind('something-new')).toBe('whole');
  });

  it("counts an image's files once each, small ones and links inline, sparse ones by their blocks", () => {
    const root = tree('a');
    const bytes = imageFootprintBytes(root);
    // 3 blocks of the hard-linked file once, the small file and the link inline, names and metadata.
    const data = 3 * 4096 + 100 + 'bin/big'.length;
    expect(bytes).toBeGreaterThan(data);
    expect(bytes).toBeLessThan(data + 6 * 1024);
  });

  it('adds the footprint on pools whose size covers the image, measured once per tree', () => {
    const root = tree('b');
    const footprint = imageFootprintBytes(root);
    const cache = new Map<string, number>();
    expect(rootDiskSize('whole', root, 8, cache)).toBe(String(footprint + 8 * 2 ** 20));
    expect(cache.size).toBe(1);
    writeFileSync(join(root, 'bin', 'big'), Buffer.alloc(100_000, 1));
    // The same tree (its directory unchanged): the cached figure.
    expect(rootDiskSize('whole', root, 8, cache)).toBe(String(footprint + 8 * 2 ** 20));
    expect(rootDiskSize('writes', root, 8, cache)).toBe(String(8 * 2 ** 20));
    expect(rootDiskSize('unenforced', root, 8, cache)).toBe(String(8 * 2 ** 20));
  });

  it('throws when the image is not there', () => {
    expect(() => rootDiskSize('whole', join(base, 'missing'), 8, new Map())).toThrow(/ENOENT/);
  });
});
