import type { MintProofsTable, MintSignaturesTable } from './tables.js';

// The rows a swap writes, as the SQLite spend writers insert them: on the event loop
// (sqlite-spend.ts) and in the worker thread (sqlite-spend-worker.ts). One place for the column
// order, so the SQL and the positional rows cannot drift apart.

/** Inserts one spent proof; binds the positional row of {@link proofRow}. */
export const INSERT_PROOF_SQL =
  'INSERT INTO mint_proofs (y, keyset_id, amount, witness, state, melt_quote_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)';

/** Inserts one blind signature; binds the positional row of {@link signatureRow}. */
export const INSERT_SIGNATURE_SQL =
  'INSERT INTO mint_signatures (b_, keyset_id, amount, c_, dleq_e, dleq_s, melt_quote_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)';

/** A `mint_proofs` row as the parameters of {@link INSERT_PROOF_SQL}, in its column order. */
export function proofRow(p: MintProofsTable): unknown[] {
  return [p.y, p.keyset_id, p.amount, p.witness, p.state, p.melt_quote_id, p.created_at];
}

/** A `mint_signatures` row as the parameters of {@link INSERT_SIGNATURE_SQL}, in its column order. */
export function signatureRow(s: MintSignaturesTable): unknown[] {
  return [s.b_, s.keyset_id, s.amount, s.c_, s.dleq_e, s.dleq_s, s.melt_quote_id, s.created_at];
}
