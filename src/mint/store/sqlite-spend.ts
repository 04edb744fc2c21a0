import { resolve } from 'node:path';
import type SQLite from 'better-sqlite3';
import type { SpendWriter } from './postgres-spend.js';
import { INSERT_PROOF_SQL, INSERT_SIGNATURE_SQL, proofRow, signatureRow } from './sqlite-spend-rows.js';
import { type ConnectionHolder, SqliteWorkerSpendWriter } from './sqlite-spend-worker.js';
import type { MintProofsTable, MintSignaturesTable } from './tables.js';

interface PendingSpend {
  proofs: readonly MintProofsTable[];
  signatures: readonly MintSignaturesTable[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * The swap's commit on SQLite without the query builder, with group commit: swaps that finish
 * their crypto in the same event-loop turn are written in one transaction, each inside its own
 * savepoint. So each swap is still all-or-nothing (a spent proof or a signed output rolls back
 * that swap alone), but the durable COMMIT — an fsync, the dominant cost of a swap on a real
 * disk — is shared. Every caller hears back only after the COMMIT returned.
 *
 * Same rows and constraints as the Kysely path, which stays the portable one. While a Kysely
 * transaction is open on the connection the flush waits for it, so never await a swap from inside
 * such a transaction.
 */
export class SqliteSpendWriter implements SpendWriter {
  private queue: PendingSpend[] = [];
  private readonly spendOne: (spend: PendingSpend) => void;
  private readonly commitBatch: (batch: readonly PendingSpend[], outcomes: unknown[]) => void;

  constructor(private readonly sqlite: SQLite.Database) {
    const insertProof = sqlite.prepare(INSERT_PROOF_SQL);
    const insertSignature = sqlite.prepare(INSERT_SIGNATURE_SQL);
    // Called inside commitBatch, a better-sqlite3 transaction function runs as a SAVEPOINT and rolls
    // back to it when it throws.
    this.spendOne = sqlite.transaction((spend: PendingSpend) => {
      for (const p of spend.proofs) insertProof.run(proofRow(p));
      for (const s of spend.signatures) insertSignature.run(signatureRow(s));
    });
    this.commitBatch = sqlite.transaction((batch: readonly PendingSpend[], outcomes: unknown[]) => {
      for (const spend of batch) {
        try {
          this.spendOne(spend);
          outcomes.push(undefined);
        } catch (err) {
          outcomes.push(err ?? new Error('spend failed'));
        }
      }
    });
  }

  /** Resolves once the spend is durably committed; rejects with the database's error otherwise. */
  commit(proofs: readonly MintProofsTable[], signatures: readonly MintSignaturesTable[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ proofs, signatures, resolve, reject });
      if (this.queue.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    if (this.queue.length === 0) return;
    // A Kysely transaction is open on this connection (it awaits between statements): joining it
    // would make these spends depend on its outcome. Wait for it to end.
    if (this.sqlite.inTransaction) {
      setTimeout(() => this.flush(), 1);
      return;
    }
    const batch = this.queue;
    this.queue = [];
    const outcomes: unknown[] = [];
    try {
      this.commitBatch(batch, outcomes);
    } catch (err) {
      // The COMMIT itself failed (I/O, disk full): nothing of this batch is stored.
      for (const spend of batch) spend.reject(err);
      return;
    }
    batch.forEach((spend, i) => {
      const outcome = outcomes[i];
      if (outcome === undefined) spend.resolve();
      else spend.reject(outcome);
    });
  }
}

/**
 * The swap's commit for the SQLite store under `db`: on a file, in a worker thread with a
 * connection of its own (sqlite-spend-worker.ts: the fsync off the event loop); in memory, where no
 * second connection sees the same store, on `sqlite` itself (SqliteSpendWriter).
 */
export function sqliteSpendWriter(db: ConnectionHolder, sqlite: SQLite.Database): SpendWriter {
  const inThread = new SqliteSpendWriter(sqlite);
  if (sqlite.memory || sqlite.name === '' || sqlite.readonly) return inThread;
  // Absolute: the worker opens it later, whatever the working directory is by then.
  return new SqliteWorkerSpendWriter(db, resolve(sqlite.name), inThread);
}
