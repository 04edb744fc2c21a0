import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { newLeaseId, parseLeaseId } from '../../../src/core/ids.js';
import * as lease from '../../../src/core/lease.js';
import { DEFAULT_OFFERS, priceFor } from '../../../src/core/offers.js';

const small = DEFAULT_OFFERS[0]!;
const t0 = new Date('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);

function running(seconds: number): lease.Lease {
  const l: lease.Lease = {
    id: newLeaseId(),
    offer: small,
    image: 'busybox',
    createdAt: t0,
    held: priceFor(small, seconds),
    state: { kind: 'pending' },
  };
  return { ...l, state: lease.start(l, t0, seconds) };
}

describe('lease lifecycle', () => {
  it('runs until its deadline and counts down whole seconds', () => {
    const l = running(3600);
    expect(l.state).toMatchObject({ kind: 'running', expiresAt: at(3600) });
    expect(lease.remainingSeconds(l.state, at(0.5))).toBe(3599);
    expect(lease.remainingSeconds(l.state, at(4000))).toBe(0);
  });

  it('extends from the current deadline, or from now if that passed', () => {
    const l = running(3600);
    expect(lease.extend(l.state, at(10), 600)).toMatchObject({ expiresAt: at(4200) });
    expect(lease.extend(l.state, at(5000), 600)).toMatchObject({ expiresAt: at(5600) });
  });

  it('refunds unused whole seconds on stop and splits the money', () => {
    const l = running(7200); // 120 sat held
    const { state, refund } = lease.stop(l, at(60.4)); // 7139.6 s unused -> 7139 whole -> 118 sat
    expect(refund.value).toBe(118n);
    expect(lease.moneyOf({ ...l, state })).toEqual({
      charged: Amount.of(2),
      refunded: Amount.of(118),
      held: Amount.zero(),
    });
  });

  it('refuses transitions that make no sense', () => {
    const l = running(60);
    const ended = lease.expire(l.state, at(60));
    expect(() => lease.extend(ended, at(61), 60)).toThrow();
    expect(() => lease.stop({ ...l, state: ended }, at(61))).toThrow();
    expect(() => lease.fail(l, at(1), 'x')).toThrow();
  });

  it('failed leases give everything back', () => {
    const pending: lease.Lease = { ...running(60), state: { kind: 'pending' } };
    const state = lease.fail(pending, at(0), 'start failed');
    expect(lease.moneyOf({ ...pending, state })).toMatchObject({
      charged: Amount.zero(),
      refunded: pending.held,
    });
  });

  it('always balances: held before, charged + refunded after', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 60, max: 2_592_000 }),
        fc.double({ min: -10, max: 3e6, noNaN: true }),
        (secs, stopAt) => {
          const l = running(secs);
          const { state } = lease.stop(l, at(stopAt));
          const m = lease.moneyOf({ ...l, state });
          expect(m.charged.add(m.refunded).add(m.held).value).toBe(l.held.value);
        },
      ),
    );
  });
});

describe('lease ids', () => {
  it('are unguessable, fixed-format and parse back', () => {
    const a = newLeaseId();
    expect(a).toMatch(/^lse_[0-9a-z]{26}$/);
    expect(parseLeaseId(a)).toBe(a);
    expect(newLeaseId()).not.toBe(a);
    for (const bad of ['lse_', 'lse_../../etc', 42, null, `lse_${'a'.repeat(27)}`])
      expect(parseLeaseId(bad)).toBeUndefined();
  });
});
