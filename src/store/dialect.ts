import { type Kysely, PostgresAdapter } from 'kysely';

/**
 * True when `db` talks to PostgreSQL (else SQLite): for the few statements whose SQL differs —
 * a migration's auto-increment column, a row lock only PostgreSQL needs (SQLite serialises writers).
 */
// biome-ignore lint/suspicious/noExplicitAny: any table map; only the adapter is read.
export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * Runs `read` on one consistent snapshot of the store: figures summed over several tables (the
 * ledger) must not mix the state before and after a transaction that commits between two of its
 * queries (a stop's state change and its refund row, say). PostgreSQL: a REPEATABLE READ
 * transaction (its snapshot is taken at the first query, and a read-only one never fails to
 * serialize). SQLite: a transaction (a reader sees the database as of its first read).
 */
export function readSnapshot<DB, T>(db: Kysely<DB>, read: (trx: Kysely<DB>) => Promise<T>): Promise<T> {
  const transaction = db.transaction();
  return (isPostgres(db) ? transaction.setIsolationLevel('repeatable read') : transaction).execute(read);
}
