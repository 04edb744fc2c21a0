import type { Kysely } from 'kysely';

/**
 * `x402_payments`: every settled x402 authorization the node has claimed, once — for a lease or
 * extension, or handed back as ecash of its own mint when what it paid for had ended. The primary
 * key on the payment key (chain, asset, payer, nonce) is what makes one authorization buy one
 * thing, across replicas; the sum is the x402 income that backs refunds and change in the own
 * mint's ecash (mint/books.ts `x402_in`).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('x402_payments')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('network', 'text', (c) => c.notNull())
    .addColumn('tx', 'text', (c) => c.notNull())
    .addColumn('atomic', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('unit', 'text', (c) => c.notNull())
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
}
