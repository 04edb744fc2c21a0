import type { Insertable, Selectable } from 'kysely';
import { Amount } from '../core/amount.js';
import type { LeaseId } from '../core/ids.js';
import type { Lease, LeaseState } from '../core/lease.js';
import { type Offer, type OfferJson, offerFromJson } from '../core/offers.js';
import type { LeaseTables } from './lease-tables.js';

export type LeaseRow = Selectable<LeaseTables['leases']>;
export type PaymentRow = Selectable<LeaseTables['payments']>;
export type NewPaymentRow = Insertable<LeaseTables['payments']>;

/** Reads a stored row back into the domain's lease, refusing rows whose facts do not fit their state. */
export function leaseFromRow(row: LeaseRow): Lease {
  const offer: Offer = offerFromJson(JSON.parse(row.offer_json) as OfferJson);
  return {
    id: row.id as LeaseId,
    offer,
    image: row.image,
    createdAt: new Date(Number(row.created_at)),
    held: Amount.of(BigInt(row.held), row.unit),
    state: stateFromRow(row),
  };
}

function stateFromRow(row: LeaseRow): LeaseState {
  const date = (v: number | null, what: string): Date => {
    if (v === null) throw new Error(`lease ${row.id} in state ${row.state} has no ${what}`);
    return new Date(Number(v));
  };
  const refunded = Amount.of(BigInt(row.refunded), row.unit);
  switch (row.state) {
    case 'pending':
      return { kind: 'pending' };
    case 'running':
      return {
        kind: 'running',
        startedAt: date(row.started_at, 'start'),
        expiresAt: date(row.expires_at, 'deadline'),
      };
    case 'expired':
      return {
        kind: 'expired',
        startedAt: date(row.started_at, 'start'),
        expiresAt: date(row.expires_at, 'deadline'),
        endedAt: date(row.ended_at, 'end'),
      };
    case 'stopped':
      return {
        kind: 'stopped',
        startedAt: date(row.started_at, 'start'),
        expiresAt: date(row.expires_at, 'deadline'),
        endedAt: date(row.ended_at, 'end'),
        refunded,
      };
    case 'failed':
      return {
        kind: 'failed',
        endedAt: date(row.ended_at, 'end'),
        refunded,
        reason: row.fail_reason ?? 'unknown',
      };
  }
}

/** The columns that change with the state. */
export function stateColumns(
  state: LeaseState,
): Pick<LeaseRow, 'state' | 'started_at' | 'expires_at' | 'ended_at' | 'refunded' | 'fail_reason'> {
  const base = {
    state: state.kind,
    started_at: null,
    expires_at: null,
    ended_at: null,
    refunded: 0,
    fail_reason: null,
  };
  switch (state.kind) {
    case 'pending':
      return base;
    case 'running':
      return { ...base, started_at: state.startedAt.getTime(), expires_at: state.expiresAt.getTime() };
    case 'expired':
      return {
        ...base,
        started_at: state.startedAt.getTime(),
        expires_at: state.expiresAt.getTime(),
        ended_at: state.endedAt.getTime(),
      };
    case 'stopped':
      return {
        ...base,
        started_at: state.startedAt.getTime(),
        expires_at: state.expiresAt.getTime(),
        ended_at: state.endedAt.getTime(),
        refunded: state.refunded.toNumber(),
      };
    case 'failed':
      return {
        ...base,
        ended_at: state.endedAt.getTime(),
        refunded: state.refunded.toNumber(),
        fail_reason: state.reason,
      };
  }
}
