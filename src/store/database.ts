import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { MIGRATIONS } from './migrations/index.js';
import type { Tables } from './schema.js';

export type Database = Kysely<Tables>;

/**
 * Opens (creating if needed) the SQLite store at `path` and brings its schema up to date.
 * `:memory:` gives a private in-memory store for tests.
 */
export async function openDatabase(path: string): Promise<Database> {
  return (await openStore(path)).db;
}

/**
 * Same as openDatabase, also handing out the underlying better-sqlite3 connection: the mint's swap
 * commits through it synchronously (prepared statements, no query building), its one hot path.
 */
export async function openStore(path: string): Promise<{ db: Database; sqlite: SQLite.Database }> {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  }
  const sqlite = new SQLite(path);
  if (path !== ':memory:') chmodSync(path, 0o600);
  // WAL for concurrent readers; FULL sync because every row here may be money.
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) });
  try {
    await migrate(db);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return { db, sqlite };
}

export async function migrate(db: Kysely<Tables>): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: {
      getMigrations: async () => Object.fromEntries(MIGRATIONS.map((m) => [m.name, m.migration])),
    },
  });
  const { error } = await migrator.migrateToLatest();
  if (error) throw new Error('store migration failed', { cause: error });
}
