import { spawnSync } from 'node:child_process';
import {
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostFs } from '../../../src/drivers/crun/host-fs.js';
import { destroyDir, LayerPool } from '../../../src/drivers/crun/layer-pool.js';
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

/**
 * Every entry under `root` (links not followed): its path, type, mode, owner, a link's target, a
 * file's text; the size of each file system mounted there.
 */
function tree(root: string, label: string): string[] {
  const out: string[] = [];
  const walk = (path: string, rel: string) => {
    const s = lstatSync(path);
    const kind = s.isSymbolicLink() ? 'link' : s.isDirectory() ? 'dir' : s.isFIFO() ? 'fifo' : 'file';
    const what =
      kind === 'link'
        ? readlinkSync(path).replace(root, label)
        : kind === 'file'
          ? readFileSync(path, 'utf8')
          : '';
    out.push(`${rel} ${kind} ${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid} ${what}`);
    if (kind === 'dir') for (const e of readdirSync(path).sort()) walk(join(path, e), `${rel}/${e}`);
  };
  walk(root, '.');
  return out;
}

// The making, by the helper and by the script: the same tree, modes, owners, mounts.
describe.skipIf(!isRoot || HostFs.forHost() === undefined)(
  'making a sandbox directory: helper and script alike',
  () => {
    let base = '';
    const fs = HostFs.forHost() as HostFs;
    const ID = 1_000_000;
    const RESOLV = 'nameserver 192.0.2.53\noptions ndots:1\n';

    beforeAll(() => {
      base = mkdtempSync(join(tmpdir(), 'alacarte-hostfs-make-'));
      // An image whose /etc belongs to someone else with its own mode, and one with no /etc.
      mkdirSync(join(base, 'images', 'img', 'etc'), { recursive: true, mode: 0o750 });
      chownSync(join(base, 'images', 'img', 'etc'), ID + 7, ID + 8);
      writeFileSync(join(base, 'images', 'img', 'etc', 'hostname'), 'image');
      mkdirSync(join(base, 'images', 'bare', 'bin'), { recursive: true });
    });
    afterAll(() => {
      fs.close();
      if (base && mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
    });

    const pool = (way: string, helper: HostFs | null, resolvConf: string | undefined) => {
      mkdirSync(join(base, way, 'sandboxes'), { recursive: true });
      mkdirSync(join(base, way, 'run-state'), { recursive: true });
      return new LayerPool({
        runtimeDir: join(base, way, 'sandboxes'),
        imagesDir: join(base, 'images'),
        runStateDir: join(base, way, 'run-state'),
        busybox: BUSYBOX,
        idBase: ID,
        size: 0,
        resolvConf,
        hostFs: helper,
        create: async () => {},
        discard: async () => {},
        logger: { info: () => {}, warn: () => {} },
      });
    };

    for (const [image, resolvConf] of [
      ['img', RESOLV],
      ['bare', RESOLV],
      ['img', undefined],
    ] as const) {
      it(`image ${image}, ${resolvConf ? 'with' : 'without'} a resolv.conf`, async () => {
        const made: Record<string, string[]> = {};
        for (const [way, helper] of [
          ['helper', fs],
          ['script', null],
        ] as const) {
          const p = pool(way, helper, resolvConf);
          const warm = await p.take(image, 2, () => {});
          const runState = join(base, way, 'run-state', warm.name);
          expect(statfsSync(join(warm.dir, 'layer')).blocks * statfsSync(join(warm.dir, 'layer')).bsize).toBe(
            2 * 1024 * 1024,
          );
          // The overlay: the image's files seen through it, the layer's resolv.conf over the image's.
          if (image === 'img')
            expect(readFileSync(join(warm.dir, 'rootfs', 'etc', 'hostname'), 'utf8')).toBe('image');
          expect(existsSync(join(warm.dir, 'rootfs', 'etc', 'resolv.conf'))).toBe(resolvConf !== undefined);
          made[way] = [
            ...tree(warm.dir, '<dir>').filter((l) => !l.startsWith('./rootfs/')),
            ...tree(runState, '<run-state>'),
          ].map((l) => l.replaceAll(join(base, way), '<base>').replaceAll(warm.name, '<name>'));
          await destroyDir(warm.dir, BUSYBOX, helper);
          await p.close();
          expect(existsSync(warm.dir)).toBe(false);
          expect(existsSync(runState)).toBe(false);
        }
        expect(made.helper).toEqual(made.script);
        expect(made.helper).toContain(`./layer/upper dir 755 ${ID}:${ID} `);
        expect(made.helper).toContain(`./run/x dir 711 0:0 `);
        if (resolvConf) {
          expect(made.helper).toContain(`./layer/upper/etc/resolv.conf file 644 ${ID}:${ID} ${RESOLV}`);
          expect(made.helper).toContain(
            image === 'img'
              ? `./layer/upper/etc dir 750 ${ID + 7}:${ID + 8} `
              : `./layer/upper/etc dir 755 ${ID}:${ID} `,
          );
        }
      });
    }

    it('a directory that exists already is taken, not touched', async () => {
      const dir = join(base, 'taken');
      mkdirSync(join(dir, 'mine'), { recursive: true });
      const made = await fs.make({
        dir,
        lower: join(base, 'images', 'img'),
        runState: undefined,
        diskMib: 1,
        inodes: 4096,
        id: ID,
        resolvConf: undefined,
      });
      expect(made).toBe('taken');
      expect(readdirSync(dir)).toEqual(['mine']);
    });
  },
);

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
