import type { Kysely } from 'kysely';

/**
 * `l402_payments`: every paid L402 invoice the node has claimed, once — for a lease or extension,
 * or handed back as ecash when the lease had ended. The primary key on the payment hash is what
 * makes one paid macaroon buy one thing, across replicas; the sum is Lightning the node's own mint
 * backs its refunds and change with (mint/books.ts).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('l402_payments')
    .addColumn('payment_hash', 'text', (c) => c.primaryKey())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('unit', 'text', (c) => c.notNull())
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
}
