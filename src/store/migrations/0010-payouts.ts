import { type Kysely, sql } from 'kysely';

/**
 * Operator payouts (src/payouts/): one row per payout over Lightning, written `pending` before
 * anything is paid and resolved from the payer's state (the own mint's Lightning backend, or the
 * trusted mint's melt quote). At most one payout is pending at a time: a partial unique index
 * makes a second one fail in the store itself, across processes.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('payouts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('request', 'text', (c) => c.notNull())
    .addColumn('payment_hash', 'text', (c) => c.notNull())
    .addColumn('melt_quote_id', 'text')
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('fee_reserve', 'bigint', (c) => c.notNull())
    .addColumn('inputs', 'bigint')
    .addColumn('fee', 'bigint')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('resolved_at', 'bigint')
    .execute();
  await sql`create unique index payouts_one_pending on payouts (state) where state = 'pending'`.execute(db);
  await db.schema.createIndex('payouts_payment_hash').on('payouts').column('payment_hash').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('payouts').execute();
}
