import { sql } from 'kysely';
import { normalizeMintUrl } from '../rails/cashu/proofs.js';
import type { Database } from '../store/database.js';
import { readSnapshot } from '../store/dialect.js';

/**
 * One mint's share of the books; received = charged + refunded + held holds for each, and what
 * was charged splits again as charged = paid_out + payout_pending + unpaid (payouts are paid out
 * of earnings: a payout moves money from `unpaid` to `paid_out`, never out of `held`).
 */
export interface MintFigures {
  /** Kept for time of the payments taken at this mint (change excluded). */
  received: number;
  charged: number;
  refunded: number;
  held: number;
  /** Payments this mint took that bought nothing and were handed back (outside `received`). */
  bounced: number;
  /** Paid out over Lightning from this source, fees included (src/payouts/). */
  paid_out: number;
  /** A payout in flight from this source: its amount and the most it may cost on top. */
  payout_pending: number;
  /** Earned and not paid out (charged less paid_out and payout_pending). */
  unpaid: number;
  /**
   * Own mint: what x402 payments brought in. Booked here (their refunds and change are this mint's
   * ecash), but the money itself reached the operator's `payTo` on chain: paying it out again over
   * Lightning would spend the reserve behind the ecash in circulation. 0 for a trusted mint.
   */
  on_chain: number;
  /** What a payout from this source may take: unpaid less on_chain, never below 0. */
  payable: number;
}

export interface LeaseBooks {
  unit: string;
  /** Kept for time, over every payment: what the node took, change excluded. */
  received: number;
  charged: number;
  refunded: number;
  held: number;
  /**
   * Payments handed back whole (an extension of a lease that had ended, a paid invoice or x402
   * settlement that bought nothing), over every mint.
   */
  bounced: number;
  /** Over every mint: charged = paid_out + payout_pending + unpaid. */
  paid_out: number;
  payout_pending: number;
  unpaid: number;
  /**
   * The same figures per mint: this node's own mint (backed by its Lightning) apart from each
   * trusted mint (ecash the node holds at another operator's mint).
   */
  byMint: { own: MintFigures; trusted: Array<{ mint: string } & MintFigures> };
  leases: { running: number; expired: number; stopped: number; failed: number; pending: number };
}

/**
 * The lease side of the operator ledger, from the store. `received` comes from the payments table
 * and the split from the leases table, so the identity received = charged + refunded + held is a
 * real check that the two were always written together. Per mint, `refunded` comes from the
 * refund split (lease_refunds). `trustedMints` (config) tells which mints are not this node's own:
 * any other payment source is the own mint, under whatever address it had then.
 */
export function leaseBooks(
  db: Database,
  unit = 'sat',
  trustedMints: readonly string[] = [],
): Promise<LeaseBooks> {
  return readSnapshot(db, (snapshot) => leaseBooksIn(snapshot, unit, trustedMints));
}

/**
 * leaseBooks read through `db` as it is: inside a snapshot the caller holds (readSnapshot), to
 * read other books (the mint's) from the same one.
 */
export async function leaseBooksIn(
  db: Database,
  unit = 'sat',
  trustedMints: readonly string[] = [],
): Promise<LeaseBooks> {
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
    bounced: 0,
    paid_out: 0,
    payout_pending: 0,
    unpaid: 0,
    byMint: await mintFigures(db, unit, trustedMints),
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
  for (const m of [books.byMint.own, ...books.byMint.trusted]) {
    books.bounced += m.bounced;
    books.paid_out += m.paid_out;
    books.payout_pending += m.payout_pending;
    books.unpaid += m.unpaid;
  }
  return books;
}

async function mintFigures(
  db: Database,
  unit: string,
  trustedMints: readonly string[],
): Promise<LeaseBooks['byMint']> {
  const zero = (): MintFigures => ({
    received: 0,
    charged: 0,
    refunded: 0,
    held: 0,
    bounced: 0,
    paid_out: 0,
    payout_pending: 0,
    unpaid: 0,
    on_chain: 0,
    payable: 0,
  });
  const own = zero();
  const trusted = new Map(
    trustedMints.map((url) => [normalizeMintUrl(url), { mint: url.trim().replace(/\/+$/, ''), ...zero() }]),
  );
  const at = (url: string): MintFigures => trusted.get(normalizeMintUrl(url)) ?? own;

  const kept = await db
    .selectFrom('payments')
    .innerJoin('leases', 'leases.id', 'payments.lease_id')
    .select([
      'payments.mint_url as mint',
      sql<number>`case when leases.state in ('pending', 'running') then 1 else 0 end`.as('live'),
      sql<number>`coalesce(sum(payments.kept), 0)`.as('n'),
    ])
    .groupBy(['payments.mint_url', 'live'])
    .execute();
  for (const r of kept) {
    const m = at(r.mint);
    m.received += Number(r.n);
    if (Number(r.live) === 1) m.held += Number(r.n);
    else m.charged += Number(r.n);
  }
  // Refunds are booked only as a lease ends: all of them belong to ended leases.
  const refunded = await db
    .selectFrom('lease_refunds')
    .select(['mint_url as mint', sql<number>`coalesce(sum(amount), 0)`.as('n')])
    .groupBy('mint_url')
    .execute();
  for (const r of refunded) {
    const m = at(r.mint);
    m.refunded += Number(r.n);
    m.charged -= Number(r.n);
  }
  const bounced = await db
    .selectFrom('bounced_payments')
    .select(['mint_url as mint', sql<number>`coalesce(sum(returned), 0)`.as('n')])
    .groupBy('mint_url')
    .execute();
  for (const r of bounced) at(r.mint).bounced += Number(r.n);
  // Paid L402 invoices handed back without a lease to name (a create refused after the price rose
  // or the credential expired) and settled x402 payments likewise (the settlement sweep returned a
  // payment whose payer never came back to claim it): the own mint's ecash, outside `received` like
  // any bounced payment.
  for (const table of ['l402_payments', 'x402_payments'] as const) {
    const returned = await db
      .selectFrom(table)
      .select(sql<number>`coalesce(sum(amount), 0)`.as('n'))
      .where('outcome', '=', 'returned')
      .where('key', 'not in', db.selectFrom('bounced_payments').select('key'))
      .executeTakeFirst();
    own.bounced += Number(returned?.n ?? 0);
  }
  // Payouts name their source 'own' or the trusted mint's URL; 'own' is no trusted mint.
  const payouts = await db
    .selectFrom('payouts')
    .select([
      'source',
      'state',
      sql<number>`coalesce(sum(amount + coalesce(fee, 0)), 0)`.as('paid'),
      sql<number>`coalesce(sum(amount + fee_reserve), 0)`.as('reserved'),
    ])
    .where('state', 'in', ['paid', 'pending'])
    .groupBy(['source', 'state'])
    .execute();
  for (const r of payouts) {
    const m = at(r.source);
    if (r.state === 'paid') m.paid_out += Number(r.paid);
    else m.payout_pending += Number(r.reserved);
  }
  // Everything x402 ever brought in, held leases' share included: errs on the side of paying less.
  const x402 = await db
    .selectFrom('x402_payments')
    .select(sql<number>`coalesce(sum(amount), 0)`.as('n'))
    .where('unit', '=', unit)
    .executeTakeFirst();
  own.on_chain = Number(x402?.n ?? 0);
  for (const m of [own, ...trusted.values()]) {
    m.unpaid = m.charged - m.paid_out - m.payout_pending;
    m.payable = Math.max(0, m.unpaid - m.on_chain);
  }
  return { own, trusted: [...trusted.values()] };
}
