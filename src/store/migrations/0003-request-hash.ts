import type { Kysely } from 'kysely';

/**
 * A payment remembers a keyed digest of the request it paid for (never the body itself: `env`
 * may hold secrets), so that the same payment or Idempotency-Key with another body is refused
 * instead of replayed. Rows from before have none and keep replaying by payment alone.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('payments').addColumn('request_hash', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('payments').dropColumn('request_hash').execute();
}
