import type { Kysely } from 'kysely';

/**
 * A lease records where its sandbox is (src/leases/compute-target.ts): `target`, the compute
 * target that holds it (`crun:<replica id>`: one replica's own sandboxes; `lxd:<owner>`: an LXD
 * daemon or cluster every replica reaches), and `replica`, the replica that started it. Reconcile,
 * orphan removal and "vanished" detection look only at their own target's leases, so one replica
 * restarting never ends another's. Leases from before have '' in both: a single node's, its own.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('leases')
    .addColumn('target', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
  await db.schema
    .alterTable('leases')
    .addColumn('replica', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
  await db.schema.createIndex('leases_target_state').on('leases').columns(['target', 'state']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('leases_target_state').execute();
  await db.schema.alterTable('leases').dropColumn('replica').execute();
  await db.schema.alterTable('leases').dropColumn('target').execute();
}
