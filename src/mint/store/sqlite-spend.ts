import type SQLite from 'better-sqlite3';
import type { MintProofsTable, MintSignaturesTable } from './tables.js';

/**
 * The swap's commit on SQLite without the query builder: two prepared INSERTs in one synchronous
 * better-sqlite3 transaction. Same rows, same constraints as the Kysely path (which stays the
 * portable one, and the one used while another transaction is open on the connection).
 */
export class SqliteSpendWriter {
  private readonly commitFn: (
    proofs: readonly MintProofsTable[],
    signatures: readonly MintSignaturesTable[],
  ) => void;

  constructor(private readonly sqlite: SQLite.Database) {
    const insertProof = sqlite.prepare(
      'INSERT INTO mint_proofs (y, keyset_id, amount, secret, c, witness, state, melt_quote_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const insertSignature = sqlite.prepare(
      'INSERT INTO mint_signatures (b_, keyset_id, amount, c_, dleq_e, dleq_s, melt_quote_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.commitFn = sqlite.transaction(
      (proofs: readonly MintProofsTable[], signatures: readonly MintSignaturesTable[]) => {
        for (const p of proofs) {
          insertProof.run(
            p.y,
            p.keyset_id,
            p.amount,
            p.secret,
            p.c,
            p.witness,
            p.state,
            p.melt_quote_id,
            p.created_at,
          );
        }
        for (const s of signatures) {
          insertSignature.run(
            s.b_,
            s.keyset_id,
            s.amount,
            s.c_,
            s.dleq_e,
            s.dleq_s,
            s.melt_quote_id,
            s.created_at,
          );
        }
      },
    );
  }

  /**
   * Commits now and returns true, or returns false without doing anything when the connection is
   * inside someone else's (Kysely) transaction: joining it would make this commit depend on theirs.
   */
  tryCommit(proofs: readonly MintProofsTable[], signatures: readonly MintSignaturesTable[]): boolean {
    if (this.sqlite.inTransaction) return false;
    this.commitFn(proofs, signatures);
    return true;
  }
}
