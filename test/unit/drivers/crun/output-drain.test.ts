import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { OutputDrain } from '../../../../src/drivers/crun/output-drain.js';

describe('OutputDrain', () => {
  it('reads a kept pipe to its end, dropping the bytes, then forgets it', async () => {
    const drain = new OutputDrain(4);
    const pipe = new PassThrough({ highWaterMark: 16 });
    pipe.on('data', () => {
      throw new Error('the exec stopped listening');
    });
    drain.keep(pipe);
    // Far more than the pipe buffers: a writer that nobody reads would block here.
    for (let i = 0; i < 1000; i++) pipe.write(Buffer.alloc(64));
    await new Promise((r) => setImmediate(r));
    expect(pipe.writableLength).toBe(0);
    expect(drain.size).toBe(1);
    pipe.end();
    await new Promise((r) => pipe.once('end', r));
    expect(drain.size).toBe(0);
  });

  it('keeps at most its bound, closing the oldest first', () => {
    const drain = new OutputDrain(2);
    const pipes = [new PassThrough(), new PassThrough(), new PassThrough()];
    for (const p of pipes) drain.keep(p);
    expect(pipes.map((p) => p.destroyed)).toEqual([true, false, false]);
    expect(drain.size).toBe(2);
    drain.close();
    expect(pipes.every((p) => p.destroyed)).toBe(true);
    expect(drain.size).toBe(0);
  });
});
