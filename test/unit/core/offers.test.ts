import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_OFFERS, diskFitsMemory, priceFor, quote, refundFor } from '../../../src/core/offers.js';

const small = DEFAULT_OFFERS.find((o) => o.id === 'small')!;

describe('pricing', () => {
  it('charges ceil(amount_per_hour × seconds / 3600)', () => {
    expect(priceFor(small, 7200).value).toBe(120n);
    expect(priceFor(small, 60).value).toBe(1n);
    expect(priceFor(small, 61).value).toBe(2n);
    expect(priceFor({ ...small, amountPerHour: 1n }, 1).value).toBe(1n);
  });

  it('refunds floor(amount_per_hour × unused whole seconds / 3600)', () => {
    expect(refundFor(small, 3540).value).toBe(59n);
    expect(refundFor(small, 59.9).value).toBe(0n);
    expect(refundFor(small, -5).value).toBe(0n);
  });

  it('never refunds more than the price of the same seconds', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        fc.integer({ min: 1, max: 30 * 24 * 3600 }),
        (perHour, s) => {
          const o = { ...small, amountPerHour: perHour };
          expect(refundFor(o, s).value <= priceFor(o, s).value).toBe(true);
        },
      ),
    );
  });

  it('quotes only known offers within their bounds', () => {
    const ok = quote(DEFAULT_OFFERS, 'small', 7200);
    expect(ok.ok && ok.quote.amount.value).toBe(120n);
    expect(quote(DEFAULT_OFFERS, 'nope', 7200)).toMatchObject({ ok: false, code: 'invalid_request' });
    expect(quote(DEFAULT_OFFERS, 'small', 59)).toEqual({
      ok: false,
      code: 'invalid_request',
      message:
        "59 is too short: seconds must be a whole number from 60 (1m) to 2592000 (30d) for offer 'small'",
    });
    const odd = { ...small, id: 'odd', minSeconds: 90, maxSeconds: 5430 };
    expect(quote([odd], 'odd', 5)).toMatchObject({
      message:
        "5 is too short: seconds must be a whole number from 90 (1m30s) to 5430 (1h30m30s) for offer 'odd'",
    });
    expect(quote(DEFAULT_OFFERS, 'small', 30 * 24 * 3600 + 1)).toMatchObject({
      ok: false,
      message:
        "2592001 is too long: seconds must be a whole number from 60 (1m) to 2592000 (30d) for offer 'small'",
    });
    expect(quote(DEFAULT_OFFERS, 'small', 100.5)).toMatchObject({
      ok: false,
      message: "seconds must be a whole number from 60 (1m) to 2592000 (30d) for offer 'small'",
    });
  });

  it('ships at least three offers', () => {
    expect(DEFAULT_OFFERS.length).toBeGreaterThanOrEqual(3);
  });
});

describe('disk held in memory (crun)', () => {
  it('every default offer gives at most half its memory as disk', () => {
    for (const o of DEFAULT_OFFERS) expect(diskFitsMemory(o), o.id).toBe(true);
  });

  it('an offer with more disk than half its memory does not fit', () => {
    expect(diskFitsMemory({ memoryMib: 512, diskMib: 256 })).toBe(true);
    expect(diskFitsMemory({ memoryMib: 512, diskMib: 257 })).toBe(false);
    expect(diskFitsMemory({ memoryMib: 512, diskMib: 1024 })).toBe(false);
  });
});
