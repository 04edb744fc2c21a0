import { describe, expect, it } from 'vitest';
import { FifoStock } from '../../../../src/drivers/crun/fifo-stock.js';

/** A stock whose "mkfifo" only records each batch's size (it takes a moment, as a process would). */
function countingStock(fail = () => false) {
  const batches: number[] = [];
  const stock = new FifoStock('/nowhere', async (paths) => {
    batches.push(paths.length);
    await new Promise((r) => setTimeout(r, 5));
    if (fail()) throw new Error('mkfifo failed');
  });
  return { stock, batches };
}

describe('FifoStock', () => {
  it('serves a burst far beyond its stock with a few batches for all the callers short of it, not one each', async () => {
    const { stock, batches } = countingStock();
    // Warm: one batch made by the first take.
    await stock.take(2);
    const before = batches.length;
    const taken = await Promise.all(Array.from({ length: 100 }, () => stock.take(2)));
    const paths = taken.flat();
    expect(paths).toHaveLength(200);
    expect(new Set(paths).size).toBe(200);
    // Before: each of the ~85 callers beyond the stock ran a mkfifo of its own.
    expect(batches.length - before).toBeLessThanOrEqual(3);
    expect(Math.max(...batches)).toBeLessThanOrEqual(512);
  });

  it('a failed batch fails the callers waiting for it, and the next take makes a new one', async () => {
    let failing = true;
    const { stock, batches } = countingStock(() => failing);
    await expect(stock.take(2)).rejects.toThrow('mkfifo failed');
    failing = false;
    const [a, b] = await stock.take(2);
    expect(a).not.toBe(b);
    expect(batches.length).toBeGreaterThanOrEqual(2);
  });

  it('hands out each name once, and keeps stock ahead of the next caller', async () => {
    const { stock } = countingStock();
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) for (const p of await stock.take(2)) seen.add(p);
    expect(seen.size).toBe(80);
    await new Promise((r) => setTimeout(r, 20));
    expect(stock.size).toBeGreaterThanOrEqual(2);
  });
});
