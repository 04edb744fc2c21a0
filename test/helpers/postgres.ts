import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { freePort } from './ports.js';

/** Debian's PostgreSQL 15 server binaries (package postgresql-15). */
export const POSTGRES_BIN = process.env.ALACARTE_POSTGRES_BIN ?? '/usr/lib/postgresql/15/bin';

/** A PostgreSQL server of the test's own: a fresh cluster in a temp dir, on loopback. */
export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>` (trust auth on loopback: no password to leak). */
  baseUrl: string;
  stop(): Promise<void>;
}

/** Why no PostgreSQL server can be started here, or undefined if one can. */
export function postgresUnavailable(): string | undefined {
  for (const bin of ['initdb', 'postgres']) {
    if (!existsSync(join(POSTGRES_BIN, bin)))
      return `no ${join(POSTGRES_BIN, bin)} (Debian package postgresql-15: scripts/setup.sh --test)`;
  }
  if (process.getuid?.() === 0 && postgresIds() === undefined)
    return 'running as root and no `postgres` user to run the server as (initdb refuses root)';
  return undefined;
}

/** uid and gid of the `postgres` user (initdb and postgres refuse to run as root). */
function postgresIds(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/**
 * initdb in a fresh temp dir (as `postgres` when running as root) and a `postgres` server on a free
 * loopback port, its socket in that dir too. Resolves once it accepts connections; throws with the
 * server's output if it does not within 30 s. Durability is off (fsync): a test's cluster is thrown
 * away, and the shared machine's disk is spared.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const reason = postgresUnavailable();
  if (reason !== undefined) throw new Error(`cannot start PostgreSQL: ${reason}`);
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-pg-'));
  const ids = process.getuid?.() === 0 ? postgresIds() : undefined;
  if (ids) chownSync(dir, ids.uid, ids.gid);
  const as = ids ? { uid: ids.uid, gid: ids.gid } : {};
  const data = join(dir, 'data');
  execFileSync(
    join(POSTGRES_BIN, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    { ...as, stdio: 'pipe', cwd: dir },
  );
  const port = await freePort();
  const output: string[] = [];
  const server: ChildProcess = spawn(
    join(POSTGRES_BIN, 'postgres'),
    [
      '-D',
      data,
      '-p',
      String(port),
      '-h',
      '127.0.0.1',
      '-k',
      dir,
      '-c',
      'fsync=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=300',
    ],
    { ...as, stdio: ['ignore', 'pipe', 'pipe'], cwd: dir },
  );
  const keep = (b: Buffer) => {
    if (output.length < 200) output.push(b.toString());
  };
  server.stdout?.on('data', keep);
  server.stderr?.on('data', keep);
  const exited = new Promise<void>((r) => server.once('exit', () => r()));
  // Should this process die without its teardown (killed, a closed pipe), the server and its
  // directory go too: a watchdog polls this process and stops the server once it is gone.
  const watchdog = spawn(
    'sh',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; kill -INT "$2" 2>/dev/null; sleep 2; rm -rf "$3"',
      'watchdog',
      String(process.pid),
      String(server.pid),
      dir,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  const baseUrl = `postgres://postgres@127.0.0.1:${port}`;
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGINT'); // fast shutdown
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let attempt = 0; ; attempt++) {
    const client = new pg.Client({ connectionString: `${baseUrl}/postgres` });
    try {
      await client.connect();
      await client.end();
      break;
    } catch {
      await client.end().catch(() => undefined);
      if (attempt >= 300 || server.exitCode !== null) {
        await stop();
        throw new Error(`PostgreSQL did not start:\n${output.join('')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { baseUrl, stop };
}

/**
 * A database of its own on the server at `baseUrl` (created if missing), as a store URL. With a
 * `key` the same key gives the same database (a node restarted on its data dir finds its store);
 * without, a fresh one.
 */
export async function createDatabase(baseUrl: string, key?: string): Promise<string> {
  const name = `t_${key === undefined ? randomBytes(8).toString('hex') : createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
  const client = new pg.Client({ connectionString: `${baseUrl}/postgres` });
  await client.connect();
  try {
    const exists = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (exists.rowCount === 0) await client.query(`create database ${name}`);
  } finally {
    await client.end();
  }
  return `${baseUrl}/${name}`;
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** The `postgres` project's server (test/helpers/postgres-global.ts), or why there is none. */
    postgres: { baseUrl: string } | { unavailable: string };
  }
}

/** True when this run is the `postgres` project's: the store-backed helpers then open PostgreSQL. */
export function testStoreIsPostgres(): boolean {
  return process.env.ALACARTE_TEST_STORE === 'postgres';
}

/**
 * The shared test server's URL for a database of its own (see createDatabase), or the reason it
 * has none: the `postgres` project's global setup starts one server for the whole run.
 */
export async function testDatabase(key?: string): Promise<string> {
  const server = inject('postgres');
  if ('unavailable' in server) throw new Error(`no PostgreSQL for this test: ${server.unavailable}`);
  return createDatabase(server.baseUrl, key);
}

/** Why this `postgres` project run has no server (the suites skip with it), or undefined. */
export function testPostgresUnavailable(): string | undefined {
  if (!testStoreIsPostgres()) return undefined;
  const server = inject('postgres');
  return 'unavailable' in server ? server.unavailable : undefined;
}
