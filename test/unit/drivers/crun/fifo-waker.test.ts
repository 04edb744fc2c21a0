import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants as fs,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
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

describe('FifoWaker in a process with nothing else to do', () => {
  it('keeps the process alive until its writes are answered, and not after', () => {
    const f = fifo('alone');
    // The module as JavaScript (it imports Node's own modules only), for a plain node child.
    const source = readFileSync(
      new URL('../../../../src/drivers/crun/fifo-waker.ts', import.meta.url),
      'utf8',
    );
    writeFileSync(join(dir, 'fifo-waker.mjs'), transformSync(source, { loader: 'ts', format: 'esm' }).code);
    const script = `
      import { openSync, constants } from 'node:fs';
      import { FifoWaker } from ${JSON.stringify(join(dir, 'fifo-waker.mjs'))};
      const fd = openSync(${JSON.stringify(f.path)}, constants.O_WRONLY | constants.O_NONBLOCK);
      const ok = await new Promise((r) => new FifoWaker().write(fd, 'hi\\n', r));
      console.log('written', ok);
    `;
    // --input-type=module, as a node run by `node --input-type=module -e`: its worker must not inherit it.
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    // Before: the worker, unreferenced, let the process end with the write unanswered (exit 13).
    expect(r.stdout.trim(), r.stderr).toBe('written true');
    expect(r.status).toBe(0);
    // Really written (a worker that failed to start once had its writes taken for written).
    const buf = Buffer.alloc(16);
    expect(buf.subarray(0, readSync(f.reader, buf)).toString()).toBe('hi\n');
    closeSync(f.reader);
  });
});
