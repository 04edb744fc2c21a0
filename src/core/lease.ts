import { Amount } from './amount.js';
import type { LeaseId } from './ids.js';
import { type Offer, refundFor } from './offers.js';

/**
 * A lease's life: pending → running → expired | stopped | failed. Each state carries exactly the
 * facts that hold in it, so "a stopped lease without an end time" cannot be written down.
 */
export type LeaseState =
  | { kind: 'pending' }
  | { kind: 'running'; startedAt: Date; expiresAt: Date }
  | { kind: 'expired'; startedAt: Date; expiresAt: Date; endedAt: Date }
  | { kind: 'stopped'; startedAt: Date; expiresAt: Date; endedAt: Date; refunded: Amount }
  | { kind: 'failed'; endedAt: Date; refunded: Amount; reason: string };

export type LeaseStateName = LeaseState['kind'];
export const LEASE_STATES: readonly LeaseStateName[] = ['pending', 'running', 'expired', 'stopped', 'failed'];

export interface Lease {
  id: LeaseId;
  offer: Offer;
  image: string;
  createdAt: Date;
  /** Net amount paid for time so far (first payment plus extensions, change excluded). */
  held: Amount;
  state: LeaseState;
}

export function isEnded(state: LeaseState): boolean {
  return state.kind === 'expired' || state.kind === 'stopped' || state.kind === 'failed';
}

export function remainingSeconds(state: LeaseState, now: Date): number {
  if (state.kind !== 'running') return 0;
  return Math.max(0, Math.floor((state.expiresAt.getTime() - now.getTime()) / 1000));
}

export function start(lease: Lease, now: Date, seconds: number): LeaseState {
  if (lease.state.kind !== 'pending') throw new Error(`cannot start a ${lease.state.kind} lease`);
  return { kind: 'running', startedAt: now, expiresAt: new Date(now.getTime() + seconds * 1000) };
}

/** Extension adds paid seconds to the current deadline (never to a past one). */
export function extend(state: LeaseState, now: Date, seconds: number): LeaseState {
  if (state.kind !== 'running') throw new Error(`cannot extend a ${state.kind} lease`);
  const base = Math.max(state.expiresAt.getTime(), now.getTime());
  return { ...state, expiresAt: new Date(base + seconds * 1000) };
}

/**
 * Early stop: unused whole seconds come back at the offer's rate, capped by what is held so the
 * node never pays out more than it took for this lease.
 */
export function stop(lease: Lease, now: Date): { state: LeaseState; refund: Amount } {
  const s = lease.state;
  if (s.kind !== 'running') throw new Error(`cannot stop a ${s.kind} lease`);
  const unused = (s.expiresAt.getTime() - now.getTime()) / 1000;
  let refund = refundFor(lease.offer, unused);
  if (!lease.held.gte(refund)) refund = lease.held;
  return {
    state: {
      kind: 'stopped',
      startedAt: s.startedAt,
      expiresAt: s.expiresAt,
      endedAt: now,
      refunded: refund,
    },
    refund,
  };
}

export function expire(state: LeaseState, now: Date): LeaseState {
  if (state.kind !== 'running') throw new Error(`cannot expire a ${state.kind} lease`);
  return { kind: 'expired', startedAt: state.startedAt, expiresAt: state.expiresAt, endedAt: now };
}

/** A lease that took money but never ran gives all of it back. */
export function fail(lease: Lease, now: Date, reason: string): LeaseState {
  if (lease.state.kind !== 'pending') throw new Error(`cannot fail a ${lease.state.kind} lease`);
  return { kind: 'failed', endedAt: now, refunded: lease.held, reason };
}

/** Where the lease's money stands: held while it runs, then split into charged and refunded. */
export function moneyOf(lease: Lease): { charged: Amount; refunded: Amount; held: Amount } {
  const zero = Amount.zero(lease.held.unit);
  switch (lease.state.kind) {
    case 'pending':
    case 'running':
      return { charged: zero, refunded: zero, held: lease.held };
    case 'expired':
      return { charged: lease.held, refunded: zero, held: zero };
    case 'stopped':
    case 'failed':
      return { charged: lease.held.sub(lease.state.refunded), refunded: lease.state.refunded, held: zero };
  }
}
