import { sql } from 'kysely';
import type { Database } from '../store/database.js';

export interface LeaseBooks {
  unit: string;
  /** Kept for time, over every payment: what the node took, change excluded. */
  received: number;
  charged: number;
  refunded: number;
  held: number;
  leases: { running: number; expired: number; stopped: number; failed: number; pending: number };
}

/**
 * The lease side of the operator ledger, from the store. `received` comes from the payments table
 * and the split from the leases table, so the identity received = charged + refunded + held is a
 * real check that the two were always written together.
 */
export async function leaseBooks(db: Database, unit = 'sat'): Promise<LeaseBooks> {
  const received = await db
    .selectFrom('payments')
    .select(sql<number>`coalesce(sum(kept), 0)`.as('n'))
    .executeTakeFirstOrThrow();
  const rows = await db
    .selectFrom('leases')
    .select([
      'state',
      sql<number>`count(*)`.as('count'),
      sql<number>`coalesce(sum(held), 0)`.as('held'),
      sql<number>`coalesce(sum(refunded), 0)`.as('refunded'),
    ])
    .groupBy('state')
    .execute();
  const books: LeaseBooks = {
    unit,
    received: Number(received.n),
    charged: 0,
    refunded: 0,
    held: 0,
    leases: { running: 0, expired: 0, stopped: 0, failed: 0, pending: 0 },
  };
  for (const r of rows) {
    const held = Number(r.held);
    const refunded = Number(r.refunded);
    books.leases[r.state] = Number(r.count);
    if (r.state === 'pending' || r.state === 'running') {
      books.held += held;
    } else {
      books.refunded += refunded;
      books.charged += held - refunded;
    }
  }
  return books;
}
