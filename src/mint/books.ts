import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { PayoutTables } from '../payouts/payout-tables.js';
import type { MintTables } from './store/tables.js';

export interface MintBooks {
  /** Value of every signature ever given out (minted, swapped, change, node payouts). */
  issued: number;
  /** Value of every proof spent (swaps, melts, lease payments). */
  redeemed: number;
  /** Ecash in circulation: issued − redeemed. */
  outstanding: number;
  /**
   * Invoices paid into the mint over Lightning (internal settlements excluded: no Lightning moved),
   * and the L402 invoices of its backend that paid for leases (rails/l402): Lightning that backs the
   * node's takings like any other, and its refunds and change in this mint's ecash.
   */
  lightning_in: number;
  /**
   * x402 payments the node claimed (rails/x402), at what they were worth in the mint's unit: money
   * the operator received on chain that backs, like Lightning, the node's takings and the refunds
   * and change of x402-paid leases in this mint's ecash.
   */
  x402_in: number;
  /**
   * Paid out over Lightning, routing fees included: melts, and the node's payouts of its earnings
   * from this mint (src/payouts/), which its Lightning backend pays too.
   */
  lightning_out: number;
}

/** The mint's books, straight from its tables (and the node's payouts, paid by its Lightning). */
export async function mintBooks<T extends MintTables & PayoutTables>(store: Kysely<T>): Promise<MintBooks> {
  // Kysely's table map is invariant: view the store through exactly the tables read here.
  const db = store as unknown as Kysely<MintTables & PayoutTables>;
  const issued = await db
    .selectFrom('mint_signatures')
    .select(sql<number>`coalesce(sum(amount), 0)`.as('n'))
    .executeTakeFirstOrThrow();
  const redeemed = await db
    .selectFrom('mint_proofs')
    .select(sql<number>`coalesce(sum(amount), 0)`.as('n'))
    .where('state', '=', 'SPENT')
    .executeTakeFirstOrThrow();
  const lightningIn = await db
    .selectFrom('mint_mint_quotes')
    .select(sql<number>`coalesce(sum(amount), 0)`.as('n'))
    .where('state', 'in', ['PAID', 'ISSUED'])
    .where('paid_by_melt_quote_id', 'is', null)
    .executeTakeFirstOrThrow();
  const lightningOut = await db
    .selectFrom('mint_melt_quotes')
    .select(sql<number>`coalesce(sum(amount + coalesce(fee_paid, 0)), 0)`.as('n'))
    .where('state', '=', 'PAID')
    .where('internal_mint_quote_id', 'is', null)
    .executeTakeFirstOrThrow();
  const payouts = await db
    .selectFrom('payouts')
    .select(sql<number>`coalesce(sum(amount + coalesce(fee, 0)), 0)`.as('n'))
    .where('source', '=', 'own')
    .where('state', '=', 'paid')
    .executeTakeFirstOrThrow();
  // The L402 and x402 rails' tables, by name: the mint's own schema does not know them.
  const l402 = await sql<{ n: number }>`select coalesce(sum(amount), 0) as n from l402_payments`.execute(db);
  const x402 = await sql<{ n: number }>`select coalesce(sum(amount), 0) as n from x402_payments`.execute(db);
  const n = (r: { n: number }) => Number(r.n);
  return {
    issued: n(issued),
    redeemed: n(redeemed),
    outstanding: n(issued) - n(redeemed),
    lightning_in: n(lightningIn) + Number(l402.rows[0]?.n ?? 0),
    x402_in: Number(x402.rows[0]?.n ?? 0),
    lightning_out: n(lightningOut) + n(payouts),
  };
}
