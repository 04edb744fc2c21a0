import { type Kysely, sql } from 'kysely';

/**
 * The embedded Cashu mint's schema (src/mint/store/tables.ts). Portable SQL: SQLite now,
 * PostgreSQL later (bigint columns for amounts and times).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('mint_keysets')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('unit', 'text', (c) => c.notNull())
    .addColumn('active', 'integer', (c) => c.notNull())
    .addColumn('input_fee_ppk', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('derivation_index', 'integer', (c) => c.notNull())
    .addColumn('max_order', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('mint_keysets_unit_index', ['unit', 'derivation_index'])
    .execute();

  await db.schema
    .createTable('mint_proofs')
    .addColumn('y', 'text', (c) => c.primaryKey())
    .addColumn('keyset_id', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('witness', 'text')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('melt_quote_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  // Partial: swaps (NULL) leave the index alone, which keeps the hot path's writes small.
  await db.schema
    .createIndex('mint_proofs_melt_quote')
    .on('mint_proofs')
    .column('melt_quote_id')
    .where(sql.ref('melt_quote_id'), 'is not', null)
    .execute();

  await db.schema
    .createTable('mint_signatures')
    .addColumn('b_', 'text', (c) => c.primaryKey())
    .addColumn('keyset_id', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('c_', 'text', (c) => c.notNull())
    .addColumn('dleq_e', 'text', (c) => c.notNull())
    .addColumn('dleq_s', 'text', (c) => c.notNull())
    .addColumn('melt_quote_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('mint_signatures_melt_quote')
    .on('mint_signatures')
    .column('melt_quote_id')
    .where(sql.ref('melt_quote_id'), 'is not', null)
    .execute();

  await db.schema
    .createTable('mint_mint_quotes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('method', 'text', (c) => c.notNull())
    .addColumn('unit', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('request', 'text', (c) => c.notNull())
    .addColumn('payment_hash', 'text', (c) => c.notNull().unique())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('expiry', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('paid_at', 'bigint')
    .addColumn('issued_at', 'bigint')
    .addColumn('paid_by_melt_quote_id', 'text')
    .execute();

  await db.schema
    .createTable('mint_melt_quotes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('method', 'text', (c) => c.notNull())
    .addColumn('unit', 'text', (c) => c.notNull())
    .addColumn('request', 'text', (c) => c.notNull())
    .addColumn('payment_hash', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('fee_reserve', 'bigint', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('expiry', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('paid_at', 'bigint')
    .addColumn('payment_preimage', 'text')
    .addColumn('fee_paid', 'bigint')
    .addColumn('internal_mint_quote_id', 'text')
    .addColumn('pending_inputs_net', 'bigint')
    .addColumn('pending_outputs', 'text')
    .execute();
  await db.schema.createIndex('mint_melt_quotes_state').on('mint_melt_quotes').column('state').execute();
  // At most one melt of the same invoice can be in flight or done: a second one would pay twice.
  await sql`CREATE UNIQUE INDEX mint_melt_quotes_one_payment ON mint_melt_quotes (payment_hash) WHERE state <> 'UNPAID'`.execute(
    db,
  );
}
