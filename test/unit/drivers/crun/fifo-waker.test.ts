import { spawnSync } from 'node:child_process';
import { closeSync, constants as fs, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FifoWaker } from '../../../../src/drivers/crun/fifo-waker.js';

const dir = mkdtempSync(join(tmpdir(), 'alacarte-waker-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A FIFO with a read end held here (non-blocking), as a sandbox's process would hold it. */
function fifo(name: string): { path: string; reader: number } {
  const path = join(dir, name);
  expect(spawnSync('mkfifo', [path]).status).toBe(0);
  return { path, reader: openSync(path, fs.O_RDONLY | fs.O_NONBLOCK) };
}

const writer = (path: string) => openSync(path, fs.O_WRONLY | fs.O_NONBLOCK);
const written = (waker: FifoWaker, fd: number, data: string) =>
  new Promise<boolean>((resolve) => waker.write(fd, data, resolve));

describe('FifoWaker', () => {
  it('writes each line into its FIFO from its worker, in one message for the writes of a turn, and says so', async () => {
    const waker = new FifoWaker();
    const fifos = Array.from({ length: 20 }, (_, i) => fifo(`f${i}`));
    const results = await Promise.all(fifos.map((f, i) => written(waker, writer(f.path), `line ${i}\n`)));
    expect(results.every(Boolean)).toBe(true);
    for (const [i, f] of fifos.entries()) {
      const buf = Buffer.alloc(64);
      expect(buf.subarray(0, readSync(f.reader, buf)).toString()).toBe(`line ${i}\n`);
      // The write end was closed: nothing but this reader holds the FIFO.
      expect(() => readSync(f.reader, buf)).not.toThrow();
      closeSync(f.reader);
    }
  });

  it('a FIFO whose pipe is full: not written (an exec request then falls back), and the descriptor is closed all the same', async () => {
    const waker = new FifoWaker();
    const f = fifo('full');
    const filler = writer(f.path);
    const chunk = Buffer.alloc(4096, 120);
    try {
      for (let i = 0; i < 1024; i++) writeSync(filler, chunk);
    } catch {
      // EAGAIN: full
    }
    expect(await written(waker, writer(f.path), 'x\n')).toBe(false);
    closeSync(filler);
    closeSync(f.reader);
  });
});
