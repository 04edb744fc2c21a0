import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CappedBuffer, streamEnded } from '../../../src/drivers/capped-output.js';

describe('CappedBuffer: exec output kept up to a cap', () => {
  it('keeps the first bytes up to the cap across chunks and says more came', () => {
    const b = new CappedBuffer(5);
    b.push(Buffer.from('abc'));
    b.push(Buffer.from('defg'));
    b.push(Buffer.from('h'));
    expect(b.value().toString()).toBe('abcde');
    expect(b.truncated).toBe(true);
  });

  it('is not truncated when the output fits exactly, even if an empty chunk follows', () => {
    const b = new CappedBuffer(3);
    b.push(Buffer.from('abc'));
    b.push(Buffer.alloc(0));
    expect(b.value().toString()).toBe('abc');
    expect(b.truncated).toBe(false);
  });

  it('keeps nothing with a cap of 0, and reports what was dropped', () => {
    const b = new CappedBuffer(0);
    b.push(Buffer.from('x'));
    expect(b.value().length).toBe(0);
    expect(b.truncated).toBe(true);
  });
});

describe('streamEnded', () => {
  it('resolves on end, at once for a stream that has ended, and for none', async () => {
    const s = new PassThrough();
    s.resume();
    const ending = streamEnded(s);
    s.end('x');
    await ending;
    await streamEnded(s);
    await streamEnded(undefined);
    expect(s.readableEnded).toBe(true);
  });
});
