import type { Kysely } from 'kysely';

/**
 * A lease keeps the SSH public keys its request carried (API.md, SSH), as a JSON array of
 * OpenSSH key lines: public keys, no secret. Leases from before have none ('[]').
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('leases')
    .addColumn('ssh_keys_json', 'text', (c) => c.notNull().defaultTo('[]'))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('leases').dropColumn('ssh_keys_json').execute();
}
