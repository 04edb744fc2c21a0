import type { Kysely } from 'kysely';

/**
 * `node_identity`: what the nodes sharing this store must have in common, by name. One row now,
 * `node-key`: a value derived from `node.key` (never the key), written by the first node that
 * starts on the store, so that a replica started with another key (not copied from the first
 * one's data directory) is refused at start instead of failing credentials and payment replays.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('node_identity')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('node_identity').execute();
}
