import type { Insertable } from 'kysely';
import { DEFAULT_OFFERS, offerToJson } from '../../src/core/offers.js';
import type { LeaseTables } from '../../src/leases/lease-tables.js';

/** A `leases` row as inserted straight into a store. */
export type LeaseRow = Insertable<LeaseTables['leases']>;

/**
 * A `leases` row for a test that writes the store directly: the first default offer, busybox, in
 * sat, nothing refunded, no ports, a dummy credential hash; `fields` give the rest (its id, state,
 * times and what it holds) and may override any of those.
 */
export function leaseRow(
  fields: Pick<LeaseRow, 'id' | 'state' | 'created_at' | 'started_at' | 'expires_at' | 'ended_at' | 'held'> &
    Partial<LeaseRow>,
): LeaseRow {
  return {
    offer_id: DEFAULT_OFFERS[0]!.id,
    offer_json: JSON.stringify(offerToJson(DEFAULT_OFFERS[0]!)),
    image: 'busybox',
    refunded: 0,
    unit: 'sat',
    credential_hash: 'x'.repeat(64),
    fail_reason: null,
    ports_json: '{}',
    ...fields,
  };
}
