import { describe, expect, it } from 'vitest';
import { SpendCap } from '../../../src/agents/spend-cap.js';

describe('the spend cap of alacarte mcp', () => {
  it('allows the per-call cap until the total left is smaller, then what is left, then nothing', () => {
    const cap = new SpendCap(100n, 250n);
    expect(cap.allowance()).toBe(100n);
    cap.record(100n);
    cap.record(100n);
    expect(cap.allowance()).toBe(50n);
    cap.record(60n); // fees may take it past the total: nothing is left, never a negative allowance
    expect(cap.spent).toBe(260n);
    expect(cap.allowance()).toBe(0n);
  });

  it('books no gain: a balance that grew (change, refunds) gives no room back', () => {
    const cap = new SpendCap(10n, 10n);
    cap.record(-5n);
    expect(cap.spent).toBe(0n);
    expect(cap.allowance()).toBe(10n);
  });

  it('runs wallet calls one at a time, a failed one not stopping the next', async () => {
    const cap = new SpendCap(1n, 1n);
    const order: string[] = [];
    let release: () => void = () => undefined;
    const first = cap.exclusive(
      () =>
        new Promise<void>((_resolve, reject) => {
          order.push('first starts');
          release = () => {
            order.push('first ends');
            reject(new Error('refused'));
          };
        }),
    );
    const second = cap.exclusive(async () => {
      order.push('second runs');
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual(['first starts']);
    release();
    await expect(first).rejects.toThrow('refused');
    await second;
    expect(order).toEqual(['first starts', 'first ends', 'second runs']);
  });
});
