// A PostgreSQL 15 server of the benchmark's own (Debian's binaries, initdb in a temp dir, run as the
// `postgres` user when running as root), durable as in production (fsync on), on loopback.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const BIN = process.env.ALACARTE_POSTGRES_BIN ?? '/usr/lib/postgresql/15/bin';

/** Why no server can start here, or undefined. */
export function postgresUnavailable() {
  if (!existsSync(join(BIN, 'postgres'))) return `no ${BIN}/postgres (Debian package postgresql-15)`;
  return undefined;
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts the server; resolves with `url(name)` (a fresh database's store URL) and `stop()`. */
export async function startPostgres() {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-bench-pg-'));
  let as = {};
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
    as = { uid, gid };
  }
  const data = join(dir, 'data');
  execFileSync(
    join(BIN, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C'],
    {
      ...as,
      stdio: 'pipe',
      cwd: dir,
    },
  );
  const port = await freePort();
  const server = spawn(
    join(BIN, 'postgres'),
    ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', dir, '-c', 'max_connections=300'],
    { ...as, stdio: 'ignore', cwd: dir },
  );
  const exited = new Promise((r) => server.once('exit', r));
  const base = `postgres://postgres@127.0.0.1:${port}`;
  const stop = async () => {
    if (server.exitCode === null) {
      server.kill('SIGINT');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let attempt = 0; ; attempt++) {
    const client = new pg.Client({ connectionString: `${base}/postgres` });
    try {
      await client.connect();
      await client.end();
      break;
    } catch {
      await client.end().catch(() => {});
      if (attempt > 300) {
        await stop();
        throw new Error('PostgreSQL did not start');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  let n = 0;
  return {
    async url() {
      const name = `bench_${process.pid}_${n++}`;
      const client = new pg.Client({ connectionString: `${base}/postgres` });
      await client.connect();
      await client.query(`create database ${name}`);
      await client.end();
      return `${base}/${name}`;
    },
    stop,
  };
}
