import type { Kysely } from 'kysely';

/**
 * NUT-20: the public key a mint quote is locked to (compressed secp256k1, lowercase hex). Minting
 * such a quote needs a BIP-340 signature by its key over the quote id and the outputs. NULL: the
 * quote is not locked (every quote from before).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('mint_mint_quotes').addColumn('pubkey', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('mint_mint_quotes').dropColumn('pubkey').execute();
}
