import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, type SqliteDatabase, sql } from 'kysely';
import pg from 'pg';
import { IntegersPlugin, parseInteger } from './integers.js';
import { MIGRATIONS } from './migrations/index.js';
import type { Tables } from './schema.js';
import { QueuedSqliteDialect } from './sqlite-queue.js';

export type Database = Kysely<Tables>;

/** Which engine holds the store: embedded SQLite (one machine, the default) or a PostgreSQL server. */
export type StoreDialect = 'sqlite' | 'postgres';

/**
 * An open store. `sqlite` (better-sqlite3) or `postgres` (a `pg` pool) is the connection under
 * `db`, for the mint's swap, which commits on it directly (its one hot path).
 */
export interface Store {
  db: Database;
  dialect: StoreDialect;
  sqlite?: SQLite.Database;
  postgres?: pg.Pool;
}

/** SQL texts whose prepared statement the SQLite store keeps (least recently used dropped beyond). */
const PREPARED_STATEMENTS = 512;

/** Connections one process keeps to PostgreSQL (requests wait for a free one beyond that). */
const POSTGRES_POOL_SIZE = 10;

/** True for a `postgres://` or `postgresql://` URL: such a location is a PostgreSQL store. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(location);
}

/**
 * The URL with its password (and any `password=` parameter) replaced by `***`: the form that may
 * appear in logs and errors.
 */
export function redactStoreUrl(url: string): string {
  return (
    url
      // Up to the LAST `@`: pg takes a raw `@` in a password, and a raw `/`, `?` or `#` there makes
      // the URL invalid, yet it is still named in the error. (An `@` in the query only hides more.)
      .replace(/^(postgres(?:ql)?:\/\/[^:/@?#]*):.*@/i, '$1:***@')
      .replace(/(password=)[^&]*/gi, '$1***')
  );
}

/** The store's server could not be reached (no connection could be had); `cause` says why. */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super('the database does not answer', { cause });
    this.name = 'StoreUnavailableError';
  }
}

/**
 * Whether `err` says that the store cannot be used right now (PostgreSQL down, restarting, out of
 * connections, or the connection lost mid-statement: SQLSTATE classes 08 and 57P01–57P03, 53300),
 * rather than a bug or a statement it refused. Such a request is answered 503 `store_unavailable`
 * with Retry-After: its transaction did not commit (or, lost during COMMIT, its outcome is unknown
 * to this process: a retry of the same payment is answered from the store by its key).
 */
export function isStoreUnavailable(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && /^(08[0-9A-Z]{3}|57P0[123]|53300)$/.test(code)) return true;
  return typeof message === 'string' && message.startsWith('Connection terminated');
}

/**
 * A connection of `pool`; rejects with StoreUnavailableError when none can be had (the server's
 * absence, told apart from a refused statement: isStoreUnavailable).
 */
export function connectTo(pool: pg.Pool): Promise<pg.PoolClient> {
  return pool.connect().catch((err: unknown) => {
    throw new StoreUnavailableError(err);
  });
}

/**
 * Whether the store answers a trivial statement (GET /healthz): false when it fails. Not bounded
 * in time here: a node whose pool is busy waits its turn (busy is not down), and a checker has
 * its own timeout for a server that never answers. Never throws.
 */
export async function storeAnswers(db: Database): Promise<boolean> {
  return sql`select 1`.execute(db).then(
    () => true,
    () => false,
  );
}

/**
 * Opens (creating if needed) the SQLite store at `path` and brings its schema up to date.
 * `:memory:` gives a private in-memory store for tests; a `postgres://` URL opens PostgreSQL.
 */
export async function openDatabase(location: string): Promise<Database> {
  return (await openStore(location)).db;
}

/**
 * Opens the store at `location` and brings its schema up to date: a `postgres://…` URL
 * (libpq-style, e.g. `postgres://user:pass@host:5432/db` or `postgres://user@/db?host=/run/pg`)
 * opens PostgreSQL through a pool; anything else is the path of a SQLite file (`:memory:` for tests).
 *
 * Integers come back as numbers where they fit in 2^53 and as exact bigints beyond, in both
 * dialects (integers.ts). Errors: the migration's, with the URL's password never in the message.
 */
export async function openStore(location: string): Promise<Store> {
  return isPostgresUrl(location) ? openPostgres(location) : openSqlite(location);
}

async function openSqlite(path: string): Promise<Store> {
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
  // Integers are read exactly (bigint) and narrowed to numbers where safe (IntegersPlugin): an
  // amount beyond 2^53 comes back whole instead of rounded.
  sqlite.defaultSafeIntegers(true);
  const db = new Kysely<Tables>({
    dialect: new QueuedSqliteDialect({ database: preparedOnce(sqlite, PREPARED_STATEMENTS) }),
    plugins: [new IntegersPlugin()],
  });
  await migrateOrClose(db, undefined);
  return { db, dialect: 'sqlite', sqlite };
}

/**
 * `sqlite` as Kysely's SQLite dialect uses it, with each SQL text prepared once and its statement
 * kept (at most `max`, the least recently used dropped): Kysely prepares every query it runs, and
 * compiling the SQL again each time was a tenth of the node's thread in a burst of paid creates.
 * Safe on the one connection: statements run synchronously to the end (Kysely streams none on
 * SQLite here), SQLite re-prepares a kept statement itself after a schema change, and every
 * statement keeps the connection's safe-integer mode.
 */
function preparedOnce(sqlite: SQLite.Database, max: number): SqliteDatabase {
  const kept = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql: string) {
      let statement = kept.get(sql);
      if (statement !== undefined) {
        // Most recently used last: Map keeps insertion order.
        kept.delete(sql);
      } else {
        statement = sqlite.prepare(sql);
        if (kept.size >= max) {
          const oldest = kept.keys().next().value;
          if (oldest !== undefined) kept.delete(oldest);
        }
      }
      kept.set(sql, statement);
      return statement;
    },
  };
}

async function openPostgres(url: string): Promise<Store> {
  const pool = new pg.Pool({
    connectionString: url,
    max: POSTGRES_POOL_SIZE,
    // int8 (count, bigint columns) and numeric (sum) arrive as text: parsed here, at the boundary.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC
          ? parseInteger
          : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client's connection dropping (server restart) must not take the process down; the
  // pool replaces it and the next query reports any lasting failure. A checked-out client's
  // connection dropping likewise: its query rejects, and without a listener pg's 'error' event
  // would be thrown (pg-pool listens only while a client is idle or inside pool.query).
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  // A connection that cannot be had is the server's absence, told apart from a refused statement
  // (isStoreUnavailable): the request is answered 503, not as a bug.
  const reaching = { connect: () => connectTo(pool), end: () => pool.end() };
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool: reaching }) });
  await migrateOrClose(db, url);
  return { db, dialect: 'postgres', postgres: pool };
}

async function migrateOrClose(db: Kysely<Tables>, url: string | undefined): Promise<void> {
  try {
    await migrate(db);
  } catch (err) {
    await db.destroy();
    if (url !== undefined) {
      const why =
        err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      // pg's own messages name host and user at most; the URL itself is shown redacted.
      throw new Error(`cannot open the store at ${redactStoreUrl(url)}: ${why}`);
    }
    throw err;
  }
}

/** Applies every migration not yet applied (src/store/migrations), in order. Safe to race: Kysely locks. */
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
