import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Amount } from '../../../../src/core/amount.js';
import { atomicOf, chainIdOf, satsOf, v1NetworkOf } from '../../../../src/rails/x402/x402-settings.js';

describe('x402 amounts at the operator rate', () => {
  it('asks the price rounded up, and counts a payment rounded down', () => {
    const rate = { atomicUnits: 1000n, sats: 1n };
    expect(atomicOf(Amount.of(120), rate)).toBe(120_000n);
    expect(satsOf(120_000n, rate, 'sat').toNumber()).toBe(120);
    expect(satsOf(120_999n, rate, 'sat').toNumber()).toBe(120);
    // 3 units per 2 sat: 5 sat cost 7.5 units, so 8 are asked; 7 units are worth only 4 sat.
    const odd = { atomicUnits: 3n, sats: 2n };
    expect(atomicOf(Amount.of(5), odd)).toBe(8n);
    expect(satsOf(7n, odd, 'sat').toNumber()).toBe(4);
  });

  it('never counts what it asks for a price as less than the price', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        fc.bigInt({ min: 1n, max: 10n ** 6n }),
        (price, atomicUnits, sats) => {
          const rate = { atomicUnits, sats };
          const asked = atomicOf(Amount.of(price), rate);
          expect(satsOf(asked, rate, 'sat').value >= price).toBe(true);
          // One unit less no longer pays the price (the operator never sells below the rate).
          if (asked > 0n) expect(satsOf(asked - 1n, rate, 'sat').value < price).toBe(true);
        },
      ),
    );
  });

  it('reads CAIP-2 chain ids and knows the v1 names of the chains it sells on', () => {
    expect(chainIdOf('eip155:84532')).toBe(84532);
    expect(() => chainIdOf('solana:mainnet')).toThrow(RangeError);
    expect(v1NetworkOf('eip155:8453')).toBe('base');
    expect(v1NetworkOf('eip155:84532')).toBe('base-sepolia');
    expect(v1NetworkOf('eip155:31337')).toBeUndefined();
  });
});
