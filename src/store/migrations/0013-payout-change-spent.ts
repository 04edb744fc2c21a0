import type { Kysely } from 'kysely';

/**
 * A trusted-mint payout's NUT-08 change is held ecash for later payouts until it has been spent.
 * `change_spent` (0 or 1) records that every proof of a payout's change was found spent (or it had
 * none): spent proofs stay spent, so the next payouts no longer restore and check it at the mint,
 * and a payout looks at the payouts whose change may still be held, not at every earlier one.
 * Rows from before are 0: each is checked once more, then marked.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('payouts')
    .addColumn('change_spent', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('payouts').dropColumn('change_spent').execute();
}
