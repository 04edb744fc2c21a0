import { describe, expect, it } from 'vitest';
import { InvoiceLimits } from '../../../../src/rails/l402/invoice-limits.js';

function limits(options: { perMinute?: number; burst?: number; maxUnpaid?: number; maxClients?: number }) {
  const clock = { now: 1_000_000 };
  const l = new InvoiceLimits({
    perMinute: options.perMinute ?? 6,
    burst: options.burst ?? 3,
    maxUnpaid: options.maxUnpaid ?? 100,
    maxClients: options.maxClients,
    now: () => clock.now,
  });
  let n = 0;
  // Takes one and, when allowed, issues an invoice expiring in an hour, as the L402 rail does.
  const ask = (client: string | undefined) => {
    const answer = l.take(client);
    if (answer.ok) l.issued(`hash${n++}`, new Date(clock.now + 3_600_000));
    return answer;
  };
  return { l, clock, ask };
}

describe('InvoiceLimits', () => {
  it('gives one address its burst, then one invoice per refill, and says when', () => {
    const { clock, ask } = limits({ perMinute: 6, burst: 3 });
    for (let i = 0; i < 3; i++) expect(ask('198.51.100.7').ok).toBe(true);
    // 6 a minute: the next one in 10 s.
    expect(ask('198.51.100.7')).toEqual({ ok: false, retryAfterSeconds: 10 });
    clock.now += 9_000;
    expect(ask('198.51.100.7').ok).toBe(false);
    clock.now += 1_000;
    expect(ask('198.51.100.7').ok).toBe(true);
    expect(ask('198.51.100.7').ok).toBe(false);
    // A long pause refills up to the burst, never beyond.
    clock.now += 3_600_000;
    for (let i = 0; i < 3; i++) expect(ask('198.51.100.7').ok).toBe(true);
    expect(ask('198.51.100.7').ok).toBe(false);
  });

  it('keeps one bucket per address: another address is not held back', () => {
    const { ask } = limits({ burst: 1 });
    expect(ask('198.51.100.7').ok).toBe(true);
    expect(ask('198.51.100.7').ok).toBe(false);
    expect(ask('198.51.100.8').ok).toBe(true);
    // No address (a socket without one) is one client of its own.
    expect(ask(undefined).ok).toBe(true);
    expect(ask(undefined).ok).toBe(false);
  });

  it('caps the invoices outstanding over all clients; a paid or expired one frees its place', () => {
    const { l, clock, ask } = limits({ burst: 100, perMinute: 100, maxUnpaid: 3 });
    for (let i = 0; i < 3; i++) expect(ask(`198.51.100.${i}`).ok).toBe(true);
    expect(l.outstanding()).toBe(3);
    const refused = ask('198.51.100.50');
    expect(refused.ok).toBe(false);
    // The first place frees when the oldest invoice expires, in an hour.
    expect(refused).toEqual({ ok: false, retryAfterSeconds: 3600 });
    l.paid('hash1');
    expect(ask('198.51.100.50').ok).toBe(true);
    expect(ask('198.51.100.51').ok).toBe(false);
    clock.now += 3_600_000;
    expect(l.outstanding()).toBe(0);
    expect(ask('198.51.100.51').ok).toBe(true);
  });

  it('takes nothing from a bucket when the overall cap refuses', () => {
    const { l, ask } = limits({ burst: 1, maxUnpaid: 1 });
    expect(ask('198.51.100.1').ok).toBe(true);
    expect(ask('198.51.100.2').ok).toBe(false);
    l.paid('hash0');
    expect(ask('198.51.100.2').ok).toBe(true);
  });

  it('remembers a bounded number of addresses, forgetting the least recently heard from', () => {
    const { ask } = limits({ burst: 1, maxClients: 2 });
    expect(ask('198.51.100.1').ok).toBe(true);
    expect(ask('198.51.100.2').ok).toBe(true);
    expect(ask('198.51.100.1').ok).toBe(false); // heard from again: now the most recent
    expect(ask('198.51.100.3').ok).toBe(true); // forgets .2
    expect(ask('198.51.100.1').ok).toBe(false);
    expect(ask('198.51.100.2').ok).toBe(true); // a fresh bucket
  });

  it('refuses limits below one', () => {
    expect(() => new InvoiceLimits({ perMinute: 0, burst: 1, maxUnpaid: 1 })).toThrow(RangeError);
    expect(() => new InvoiceLimits({ perMinute: 1, burst: 1, maxUnpaid: 0 })).toThrow(RangeError);
  });
});
