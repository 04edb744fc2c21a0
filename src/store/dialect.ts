import { type Kysely, PostgresAdapter } from 'kysely';

/**
 * True when `db` talks to PostgreSQL (else SQLite): for the few statements whose SQL differs —
 * a migration's auto-increment column, a row lock only PostgreSQL needs (SQLite serialises writers).
 */
// biome-ignore lint/suspicious/noExplicitAny: any table map; only the adapter is read.
export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}
