import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { settle } from '../../../src/core/input-fees.js';

describe('settle: a payment against a price under NUT-02 input fees', () => {
  it('takes the fee out of the overpayment first', () => {
    expect(settle(150n, 2n, 120n)).toEqual({ keep: 120n, change: 28n, feePaid: 2n, absorbed: 0n });
    expect(settle(121n, 2n, 120n)).toEqual({ keep: 119n, change: 0n, feePaid: 1n, absorbed: 1n });
  });

  it('accepts a token worth exactly the price (what the 402 asks), fee borne by the node', () => {
    expect(settle(120n, 2n, 120n)).toEqual({ keep: 118n, change: 0n, feePaid: 0n, absorbed: 2n });
    expect(settle(120n, 0n, 120n)).toEqual({ keep: 120n, change: 0n, feePaid: 0n, absorbed: 0n });
  });

  it('refuses less than the price, and fees beyond the whole value', () => {
    expect(settle(119n, 0n, 120n)).toBeUndefined();
    expect(settle(5n, 6n, 1n)).toBeUndefined();
  });

  it('never pays out more than came in, never charges more than the price plus the fee', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 1n << 40n }),
        fc.bigInt({ min: 0n, max: 5000n }),
        fc.bigInt({ min: 1n, max: 1n << 40n }),
        (amount, fee, price) => {
          const s = settle(amount, fee, price);
          if (amount < price || fee > amount) {
            expect(s).toBeUndefined();
            return;
          }
          if (!s) throw new Error('expected a settlement');
          expect(s.keep + s.change + fee).toBe(amount);
          expect(s.feePaid + s.absorbed).toBe(fee);
          expect(amount - s.change).toBeLessThanOrEqual(price + fee);
          expect(amount - s.change).toBeGreaterThanOrEqual(price);
          expect(s.keep).toBeGreaterThanOrEqual(0n);
        },
      ),
    );
  });
});
