import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CursorFile } from '../../../src/lightning/cursor-file.js';

describe('CursorFile', () => {
  const path = () => join(mkdtempSync(join(tmpdir(), 'alacarte-cursor-')), 'sub', 'lnd.settle_index');

  it('starts at 0, only moves forward, and survives a new instance', () => {
    const file = path();
    const cursor = new CursorFile(file);
    expect(cursor.get()).toBe(0n);
    cursor.advance(7n);
    cursor.advance(3n);
    expect(cursor.get()).toBe(7n);
    expect(readFileSync(file, 'utf8')).toBe('7\n');
    expect(new CursorFile(file).get()).toBe(7n);
    cursor.advance(2n ** 63n);
    expect(new CursorFile(file).get()).toBe(2n ** 63n);
  });

  it('reads anything that is not a decimal integer as no cursor', () => {
    for (const junk of ['', 'abc', '-5', '1e9', '9'.repeat(30)]) {
      const file = path();
      new CursorFile(file).advance(1n);
      writeFileSync(file, junk);
      expect(new CursorFile(file).get(), junk).toBe(0n);
    }
  });
});
