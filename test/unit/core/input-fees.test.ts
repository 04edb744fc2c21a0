import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bearableFee, settle } from '../../../src/core/input-fees.js';

describe('settle: a payment against a price under NUT-02 input fees', () => {
  it('takes the fee out of the overpayment first', () => {
    expect(settle(150n, 2n, 120n, 4)).toEqual({ keep: 120n, change: 28n, feePaid: 2n, absorbed: 0n });
    expect(settle(121n, 2n, 120n, 4)).toEqual({ keep: 119n, change: 0n, feePaid: 1n, absorbed: 1n });
  });

  it('accepts a token worth exactly the price (what the 402 asks), fee borne by the node', () => {
    expect(settle(120n, 2n, 120n, 4)).toEqual({ keep: 118n, change: 0n, feePaid: 0n, absorbed: 2n });
    expect(settle(120n, 0n, 120n, 4)).toEqual({ keep: 120n, change: 0n, feePaid: 0n, absorbed: 0n });
  });

  it('refuses less than the price, and fees beyond the whole value', () => {
    expect(settle(119n, 0n, 120n, 4)).toBeUndefined();
    expect(settle(5n, 6n, 1n, 6)).toBeUndefined();
  });

  it('bears no more fee than the price in its fewest proofs would cost', () => {
    // 60 sat as 60 proofs of 1 sat at a mint charging 1 sat per proof: worth nothing after fees.
    expect(bearableFee(60n, 60n, 60)).toBe(4n); // 60 = 32 + 16 + 8 + 4
    expect(settle(60n, 60n, 60n, 60)).toBeUndefined();
    // The same fee carried by the token itself is fine; so is the fee of the fewest proofs.
    expect(settle(120n, 60n, 60n, 60)).toEqual({ keep: 60n, change: 0n, feePaid: 60n, absorbed: 0n });
    expect(settle(60n, 4n, 60n, 4)).toEqual({ keep: 56n, change: 0n, feePaid: 0n, absorbed: 4n });
    // At 100 ppk, 4 proofs cost 1 sat (rounded up): a 4-proof token worth the price passes.
    expect(settle(60n, 1n, 60n, 4)).toEqual({ keep: 59n, change: 0n, feePaid: 0n, absorbed: 1n });
  });

  it('never pays out more than came in, never charges more than the price plus the fee', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 1n << 40n }),
        fc.bigInt({ min: 0n, max: 5000n }),
        fc.bigInt({ min: 1n, max: 1n << 40n }),
        fc.integer({ min: 1, max: 1000 }),
        (amount, fee, price, inputs) => {
          const s = settle(amount, fee, price, inputs);
          const absorbed = fee > amount - price ? fee - (amount - price) : 0n;
          if (amount < price || fee > amount || absorbed > bearableFee(fee, price, inputs)) {
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
