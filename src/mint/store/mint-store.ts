import type { Kysely, Transaction } from 'kysely';
import type { BlindSignature } from '../types.js';
import type {
  MintMeltQuotesTable,
  MintMintQuotesTable,
  MintProofsTable,
  MintSignaturesTable,
  MintTables,
} from './tables.js';

export type MintDb = Kysely<MintTables>;
export type MintTrx = Transaction<MintTables>;

/**
 * The mint's view of the node's store: the same Kysely instance, typed with the mint's tables only
 * (Kysely's table map is invariant, so a wider store type does not narrow by itself).
 */
export function asMintDb<T extends MintTables>(db: Kysely<T>): MintDb {
  return db as unknown as MintDb;
}

/** True for a unique/primary-key violation, on SQLite (better-sqlite3) and PostgreSQL alike. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}

/** SQLite's bound on variables per statement is 32766; stay far below it for any dialect. */
const CHUNK = 500;

export function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export async function insertProofs(trx: MintTrx, rows: readonly MintProofsTable[]): Promise<void> {
  for (const part of chunks(rows)) await trx.insertInto('mint_proofs').values(part).execute();
}

export function signatureRows(
  signatures: readonly BlindSignature[],
  B_s: readonly string[],
  now: number,
  meltQuoteId: string | null = null,
  mintQuoteId: string | null = null,
): MintSignaturesTable[] {
  return signatures.map((s, i) => ({
    b_: B_s[i]!,
    keyset_id: s.id,
    amount: s.amount,
    c_: s.C_,
    dleq_e: s.dleq.e,
    dleq_s: s.dleq.s,
    melt_quote_id: meltQuoteId,
    mint_quote_id: mintQuoteId,
    created_at: now,
  }));
}

export async function insertSignatures(
  trx: MintTrx,
  signatures: readonly BlindSignature[],
  B_s: readonly string[],
  now: number,
  meltQuoteId: string | null = null,
  mintQuoteId: string | null = null,
): Promise<void> {
  await insertSignatureRows(trx, signatureRows(signatures, B_s, now, meltQuoteId, mintQuoteId));
}

export async function insertSignatureRows(trx: MintTrx, rows: readonly MintSignaturesTable[]): Promise<void> {
  for (const part of chunks(rows)) await trx.insertInto('mint_signatures').values(part).execute();
}

/** The stored states of these Ys (absent = unspent). */
export async function proofStates(
  db: MintDb,
  ys: readonly string[],
): Promise<Map<string, { state: MintProofsTable['state']; witness: string | null }>> {
  const out = new Map<string, { state: MintProofsTable['state']; witness: string | null }>();
  for (const part of chunks(ys)) {
    if (part.length === 0) continue;
    const rows = await db
      .selectFrom('mint_proofs')
      .select(['y', 'state', 'witness'])
      .where('y', 'in', part)
      .execute();
    for (const row of rows) out.set(row.y, { state: row.state, witness: row.witness });
  }
  return out;
}

/**
 * The stored signatures of these B_s (absent = never signed). With `issuedBy`, only those issued
 * by that request: a mint of the given quote, or a swap (neither a mint nor a melt) — what a
 * NUT-19 retry of that request may get back.
 */
export async function signedOutputs(
  db: MintDb,
  B_s: readonly string[],
  issuedBy?: { mintQuoteId: string } | 'swap',
): Promise<Map<string, BlindSignature>> {
  const out = new Map<string, BlindSignature>();
  for (const part of chunks(B_s)) {
    if (part.length === 0) continue;
    let query = db.selectFrom('mint_signatures').selectAll().where('b_', 'in', part);
    if (issuedBy === 'swap')
      query = query.where('mint_quote_id', 'is', null).where('melt_quote_id', 'is', null);
    else if (issuedBy !== undefined) query = query.where('mint_quote_id', '=', issuedBy.mintQuoteId);
    const rows = await query.execute();
    for (const row of rows) {
      out.set(row.b_, {
        amount: Number(row.amount),
        id: row.keyset_id,
        C_: row.c_,
        dleq: { e: row.dleq_e, s: row.dleq_s },
      });
    }
  }
  return out;
}

export async function getMintQuote(
  db: MintDb | MintTrx,
  id: string,
): Promise<MintMintQuotesTable | undefined> {
  return db.selectFrom('mint_mint_quotes').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function getMeltQuote(
  db: MintDb | MintTrx,
  id: string,
): Promise<MintMeltQuotesTable | undefined> {
  return db.selectFrom('mint_melt_quotes').selectAll().where('id', '=', id).executeTakeFirst();
}
