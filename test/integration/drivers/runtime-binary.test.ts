import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findRuntime } from '../../../src/drivers/crun/preflight.js';
import { readOnlyBindOf, readOnlyRuntime } from '../../../src/drivers/crun/runtime-binary.js';

const isRoot = process.getuid?.() === 0;
const scratch = mkdtempSync(join(tmpdir(), 'alacarte-runtime-binary-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const warnings: string[] = [];
const log = { info: () => {}, warn: (m: string) => warnings.push(m) };

describe('crun from a read-only mount of its binary', () => {
  it('trusts a path only when it is the binary and its last mount is read-only', () => {
    const file = join(scratch, 'bin');
    const other = join(scratch, 'other');
    writeFileSync(file, 'x');
    writeFileSync(other, 'x');
    const info = (opts: string[]) => () =>
      opts.map((o, i) => `${40 + i} 27 254:0 / ${file} ${o} - ext4 /dev/vda rw`).join('\n');
    expect(readOnlyBindOf(file, file, info(['ro,relatime']))).toBe(true);
    // A later mount over it that is writable wins.
    expect(readOnlyBindOf(file, file, info(['ro,relatime', 'rw,relatime']))).toBe(false);
    expect(readOnlyBindOf(file, file, info(['rw,relatime']))).toBe(false);
    expect(readOnlyBindOf(file, file, () => '')).toBe(false);
    // Not the same file: never trusted, whatever the mount table says.
    expect(readOnlyBindOf(other, file, info(['ro,relatime']))).toBe(false);
  });

  it.skipIf(!isRoot)(
    'runs the runtime from a mount that cannot be written, made once for every driver',
    () => {
      const runtime = findRuntime();
      if (runtime.name !== 'crun') return;
      const dir = join(scratch, 'mounts');
      const first = readOnlyRuntime(runtime, log, dir);
      const second = readOnlyRuntime(runtime, log, dir);
      try {
        expect(warnings).toEqual([]);
        expect(first.path).not.toBe(runtime.path);
        expect(second.path).toBe(first.path);
        expect(execFileSync(first.path, ['--version'], { encoding: 'utf8' })).toMatch(/crun version/);
        // Nothing changes the binary through it (CVE-2019-5736 writes it): the mount is read-only.
        // An open for writing may fail first on a running crun (ETXTBSY), so its mode is tried.
        const mode = statSync(first.path).mode & 0o7777;
        expect(() => chmodSync(first.path, mode)).toThrow(/EROFS/);
        const mounts = execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' })
          .split('\n')
          .filter((l) => l.split(' ')[4] === first.path);
        expect(mounts).toHaveLength(1);
      } finally {
        execFileSync('umount', [first.path]);
      }
    },
  );
});
