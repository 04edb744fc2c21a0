import type { Kysely } from 'kysely';

/**
 * Which mint quote a blind signature was issued for (NUT-04). A retry of `POST /v1/mint/bolt11`
 * gets its signatures again (NUT-19) only when they were issued for that very quote: matched on the
 * outputs alone, a request for another quote whose outputs were signed before would be answered
 * with those signatures instead of error 11003. NULL for swaps, melts and rows from before.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('mint_signatures').addColumn('mint_quote_id', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('mint_signatures').dropColumn('mint_quote_id').execute();
}
