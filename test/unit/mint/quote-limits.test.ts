import { describe, expect, it } from 'vitest';
import { QuoteLimits } from '../../../src/mint/quote-limits.js';

describe('QuoteLimits (unpaid quotes per client and over all)', () => {
  it('frees a place when a quote is paid or expires, and says how long to wait', () => {
    let now = 1_000_000;
    const limits = new QuoteLimits({ perClient: 2, maxUnpaid: 3, now: () => now });
    limits.issued('198.51.100.1', 'q1', new Date(now + 60_000));
    limits.issued('198.51.100.1', 'q2', new Date(now + 120_000));
    expect(limits.take('198.51.100.1')).toEqual({ ok: false, retryAfterSeconds: 60 });
    // Another client is not held back by the first one's quotes.
    expect(limits.take('198.51.100.2')).toEqual({ ok: true });
    limits.issued('198.51.100.2', 'q3', new Date(now + 60_000));
    // Three unpaid over all: nobody gets a fourth.
    expect(limits.take('198.51.100.3')).toEqual({ ok: false, retryAfterSeconds: 60 });
    limits.paid('q1');
    expect(limits.take('198.51.100.1')).toEqual({ ok: true });
    now += 121_000;
    expect(limits.outstanding()).toBe(0);
    expect(limits.take('198.51.100.3')).toEqual({ ok: true });
  });

  it('refuses bounds below one', () => {
    expect(() => new QuoteLimits({ perClient: 0, maxUnpaid: 1 })).toThrow(RangeError);
    expect(() => new QuoteLimits({ perClient: 1, maxUnpaid: 0.5 })).toThrow(RangeError);
  });
});
