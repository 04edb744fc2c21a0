import type { Kysely } from 'kysely';

/**
 * `x402_settlements`: the journal of x402 settlements the node has asked its facilitator to send
 * and not yet claimed (rails/x402/settlement-journal.ts). A row is committed before the
 * transferWithAuthorization goes to the chain and removed in the transaction that claims the
 * payment in `x402_payments` (or once the authorization can no longer move money), so that a
 * settlement whose request died before its claim — a crash, a settlement still pending, a payer
 * who never came back — is found again by the sweep and ends in a refund owed. It holds what
 * asks the chain whether the authorization was executed, never its signature (a signed
 * authorization is a bearer instrument). `checked_at` orders the sweep: the rows asked about
 * longest ago first, so that rows the chain cannot resolve yet never starve newer ones.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('x402_settlements')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('network', 'text', (c) => c.notNull())
    .addColumn('asset', 'text', (c) => c.notNull())
    .addColumn('payer', 'text', (c) => c.notNull())
    .addColumn('nonce', 'text', (c) => c.notNull())
    .addColumn('atomic', 'text', (c) => c.notNull())
    .addColumn('valid_before', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('unit', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('checked_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('x402_settlements_checked_at')
    .on('x402_settlements')
    .column('checked_at')
    .execute();
}
