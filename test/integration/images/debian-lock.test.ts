import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureDebianImage } from '../../../src/drivers/crun/debian-image.js';
import { ImageError, ImageStore } from '../../../src/drivers/crun/image-store.js';
import { findOnPath } from '../drivers/crun-target.js';

const skip = process.getuid?.() !== 0 || !findOnPath('mmdebstrap');

describe.skipIf(skip)('building debian once when several processes ask', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('waits for a build under way in a live process, and then has nothing to do', async () => {
    dir = mkdtempSync(join(tmpdir(), 'alacarte-debian-lock-'));
    const store = new ImageStore(join(dir, 'images'), join(dir, 'rt'));
    mkdirSync(join(dir, 'images/.debian.build-lock'), { recursive: true });
    writeFileSync(join(dir, 'images/.debian.build-lock/pid'), `${process.pid}\n`);
    const lines: string[] = [];
    const waiting = ensureDebianImage(store, { idBase: 1_000_000, progress: (l) => lines.push(l) });
    await sleep(700);
    expect(lines).toEqual(['another process is building the debian image; waiting for it']);
    // The other process finishes: the image is there, its lock gone.
    mkdirSync(join(dir, 'images/debian'));
    rmSync(join(dir, 'images/.debian.build-lock'), { recursive: true });
    expect(await waiting).toBeUndefined();
  });

  it('takes over the lock of a builder that died, and says why its own build failed', async () => {
    dir = mkdtempSync(join(tmpdir(), 'alacarte-debian-lock-'));
    const store = new ImageStore(join(dir, 'images'), join(dir, 'rt'));
    const dead = spawnSync('true').pid;
    mkdirSync(join(dir, 'images/.debian.build-lock'), { recursive: true });
    writeFileSync(join(dir, 'images/.debian.build-lock/pid'), `${dead}\n`);
    const lines: string[] = [];
    // A mirror nobody serves: the build starts (the stale lock was taken) and fails fast.
    const err = await ensureDebianImage(store, {
      idBase: 1_000_000,
      progress: (l) => lines.push(l),
      mirror: 'http://127.0.0.1:9/debian',
      securityMirror: 'http://127.0.0.1:9/debian-security',
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ImageError);
    expect((err as Error).message).toMatch(/^building the debian image failed \(mmdebstrap exit \d+\):\n/);
    expect(lines[0]).toMatch(/^building the debian image with mmdebstrap/);
    expect(existsSync(join(dir, 'images/.debian.build-lock'))).toBe(false);
    expect(existsSync(join(dir, 'images/debian'))).toBe(false);
    expect(store.list()).toEqual([]);
  });
});
