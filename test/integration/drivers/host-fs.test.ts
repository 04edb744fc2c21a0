import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostFs } from '../../../src/drivers/crun/host-fs.js';
import { destroyDir } from '../../../src/drivers/crun/layer-pool.js';
import { mountsUnder } from '../../../src/drivers/crun/mounts.js';

const isRoot = process.getuid?.() === 0;
const BUSYBOX = '/bin/busybox';

function mount(...args: string[]): void {
  const r = spawnSync('mount', args);
  expect(r.status, r.stderr.toString()).toBe(0);
}

/**
 * A sandbox directory as the pool makes one (layer-pool.ts make()): a tmpfs `layer`, an overlay
 * `rootfs` over an image, `run` a link to its directory in a run state named after it.
 */
function madeSandbox(base: string, name: string): { dir: string; runState: string } {
  const dir = join(base, 'sandboxes', name);
  const runState = join(base, 'run-state', name);
  mkdirSync(join(dir, 'layer'), { recursive: true });
  mkdirSync(join(dir, 'rootfs'));
  mkdirSync(join(runState, 'run', 'x'), { recursive: true });
  symlinkSync(join(runState, 'run'), join(dir, 'run'));
  mount('-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', join(dir, 'layer'));
  mkdirSync(join(dir, 'layer', 'upper'));
  mkdirSync(join(dir, 'layer', 'work'));
  mount(
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${join(base, 'image')},upperdir=${join(dir, 'layer', 'upper')},workdir=${join(dir, 'layer', 'work')}`,
    join(dir, 'rootfs'),
  );
  writeFileSync(join(dir, 'rootfs', 'written'), 'by the tenant');
  return { dir, runState };
}

// The same cases through the helper and through the busybox script it replaces where it cannot run.
describe.skipIf(!isRoot).each([
  { way: 'the host file helper (perl, system calls)', fs: () => HostFs.forHost() ?? null },
  { way: 'the busybox script', fs: () => null },
])('removing a sandbox directory: $way', ({ fs: makeFs }) => {
  let base = '';
  const fs = makeFs();
  const destroy = (dir: string) => destroyDir(dir, BUSYBOX, fs);

  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'alacarte-hostfs-'));
    mkdirSync(join(base, 'image', 'etc'), { recursive: true });
    writeFileSync(join(base, 'image', 'etc', 'hostname'), 'image');
    mkdirSync(join(base, 'sandboxes'));
  });
  afterAll(() => {
    fs?.close();
    if (base && mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
  });

  it('unmounts its layer and root, removes it and its run state, and leaves the image alone', async () => {
    const { dir, runState } = madeSandbox(base, 'w1');
    await destroy(dir);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(runState)).toBe(false);
    expect(mountsUnder(join(base, 'sandboxes'))).toEqual([]);
    expect(readFileSync(join(base, 'image', 'etc', 'hostname'), 'utf8')).toBe('image');
  });

  it('unmounts a mount of another file system under it before removing, never deleting inside it', async () => {
    const { dir } = madeSandbox(base, 'w2');
    // A directory of another file system (/dev/shm) bound under the sandbox: removing through it
    // would delete its files. (A bind from the sandbox's own file system has its device number and
    // is not told apart without reading the mount table; the node makes none.)
    const outside = mkdtempSync('/dev/shm/alacarte-hostfs-');
    writeFileSync(join(outside, 'keep'), 'host data');
    mkdirSync(join(dir, 'bound'));
    mount('--bind', outside, join(dir, 'bound'));
    await destroy(dir);
    expect(existsSync(dir)).toBe(false);
    expect(mountsUnder(join(base, 'sandboxes'))).toEqual([]);
    expect(readFileSync(join(outside, 'keep'), 'utf8')).toBe('host data');
    rmSync(outside, { recursive: true });
  });

  it('removes a half-made directory, and one already gone is no error', async () => {
    const dir = join(base, 'sandboxes', 'w3');
    mkdirSync(join(dir, 'layer'), { recursive: true });
    await destroy(dir);
    expect(existsSync(dir)).toBe(false);
    await expect(destroy(dir)).resolves.toBeUndefined();
  });

  it('follows no link: a run link not to its own run state, and links inside, are removed as links', async () => {
    const dir = join(base, 'sandboxes', 'w4');
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(join(elsewhere, 'run'), { recursive: true });
    writeFileSync(join(elsewhere, 'run', 'keep'), 'not the sandbox');
    mkdirSync(dir);
    symlinkSync(join(elsewhere, 'run'), join(dir, 'run'));
    symlinkSync(elsewhere, join(dir, 'link'));
    await destroy(dir);
    expect(existsSync(dir)).toBe(false);
    expect(readFileSync(join(elsewhere, 'run', 'keep'), 'utf8')).toBe('not the sandbox');
  });

  it('the same directory removed twice at once: both succeed', async () => {
    const { dir } = madeSandbox(base, 'w5');
    const results = await Promise.allSettled([destroy(dir), destroy(dir)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(existsSync(dir)).toBe(false);
    expect(mountsUnder(join(base, 'sandboxes'))).toEqual([]);
  });
});

describe.skipIf(!isRoot || HostFs.forHost() === undefined)('the host file helper itself', () => {
  it('refuses a relative path or one with a newline, without asking the helper', async () => {
    const fs = HostFs.forHost() as HostFs;
    await expect(fs.destroy('relative/dir')).rejects.toThrow(/not a sandbox directory/);
    await expect(fs.destroy('/tmp/a\nb')).rejects.toThrow(/not a sandbox directory/);
    fs.close();
  });

  it('a helper killed mid-way fails what it had, and the next request starts a new one', async () => {
    const base = mkdtempSync(join(tmpdir(), 'alacarte-hostfs-kill-'));
    const fs = HostFs.forHost() as HostFs;
    try {
      await fs.destroy(join(base, 'none'));
      // This process's helper (other test files run theirs beside it).
      const helpers = spawnSync('pgrep', ['-P', String(process.pid), 'perl'], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter(Boolean)
        .map(Number);
      expect(helpers.length).toBeGreaterThan(0);
      // Stopped, so that none of the requests is answered before it dies.
      for (const pid of helpers) process.kill(pid, 'SIGSTOP');
      const dirs = Array.from({ length: 20 }, (_, i) => join(base, `d${i}`));
      for (const d of dirs) mkdirSync(d);
      const all = Promise.allSettled(dirs.map((d) => fs.destroy(d)));
      for (const pid of helpers) process.kill(pid, 'SIGKILL');
      const settled = await all;
      expect(settled.map((r) => (r.status === 'rejected' ? String(r.reason) : 'removed'))).toEqual(
        dirs.map(() => expect.stringMatching(/host file helper/)),
      );
      for (const d of dirs) await fs.destroy(d);
      expect(dirs.filter((d) => existsSync(d))).toEqual([]);
    } finally {
      fs.close();
      rmSync(base, { recursive: true, force: true });
    }
  });
});
