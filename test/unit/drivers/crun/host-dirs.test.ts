import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { placeMountedDirs, traversable } from '../../../../src/drivers/crun/host-dirs.js';

/** Where what sandboxes mount lives, for a data directory in a private or an open place. */
const scratch = mkdtempSync(join(tmpdir(), 'alacarte-host-dirs-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function dirs() {
  const top = mkdtempSync(join(scratch, 'case-'));
  const root = join(top, 'var-lib-alacarte');
  const home = join(top, 'home');
  mkdirSync(home, { mode: 0o700 });
  const data = join(home, 'data');
  mkdirSync(data, { mode: 0o711 });
  return { top, root, home, data };
}

describe('placeMountedDirs', () => {
  it('leaves a data directory every sandbox can reach as it is', () => {
    const { top, root, home, data } = dirs();
    for (const p of [scratch, top, home]) chmodSync(p, 0o711);
    expect(traversable(data)).toBe(true);
    expect(placeMountedDirs(data, root)).toBeUndefined();
    expect(lstatSync(join(data, 'images'), { throwIfNoEntry: false })).toBeUndefined();
    chmodSync(scratch, 0o700);
  });

  it('moves images and sandboxes of a private data directory out, linked, keeping what was there', () => {
    const { root, data } = dirs();
    expect(traversable(data)).toBe(false);
    mkdirSync(join(data, 'images', 'debian'), { recursive: true });
    writeFileSync(join(data, 'images', 'debian', 'marker'), 'kept\n');
    const base = placeMountedDirs(data, root);
    expect(base).toMatch(new RegExp(`^${root}/[0-9a-f]{16}$`));
    for (const name of ['images', 'sandboxes']) {
      expect(lstatSync(join(data, name)).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(data, name))).toBe(join(base as string, name));
    }
    expect(readFileSync(join(data, 'images', 'debian', 'marker'), 'utf8')).toBe('kept\n');
    expect(statSync(root).mode & 0o777).toBe(0o711);
    expect(statSync(base as string).mode & 0o777).toBe(0o711);
    expect(readFileSync(join(base as string, 'data-dir'), 'utf8')).toBe(`${data}\n`);
    // Again (a restart): the same place, nothing moved twice.
    expect(placeMountedDirs(data, root)).toBe(base);
    expect(readFileSync(join(data, 'images', 'debian', 'marker'), 'utf8')).toBe('kept\n');
  });
});
