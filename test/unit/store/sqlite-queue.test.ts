import SQLite from 'better-sqlite3';
import { Kysely, sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { QueuedSqliteDialect } from '../../../src/store/sqlite-queue.js';

interface Tables {
  log: { n: number };
}

/** The one SQLite connection served in arrival order while a transaction holds it. */
describe('QueuedSqliteDialect', () => {
  it('runs the queries that waited for a transaction after it, each once, in the order they asked', async () => {
    const sqlite = new SQLite(':memory:');
    sqlite.exec('create table log (n integer)');
    const db = new Kysely<Tables>({ dialect: new QueuedSqliteDialect({ database: sqlite }) });
    let release: () => void = () => {};
    const holding = db.transaction().execute(async (trx) => {
      await trx.insertInto('log').values({ n: -1 }).execute();
      // Holds the connection across a macrotask, as a transaction awaiting I/O does.
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    const done: number[] = [];
    const waiting = Array.from({ length: 50 }, (_, n) =>
      db
        .insertInto('log')
        .values({ n })
        .execute()
        .then(() => done.push(n)),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Nothing ran while the transaction held the connection.
    expect(done).toEqual([]);
    release();
    await Promise.all([holding, ...waiting]);
    const order = Array.from({ length: 50 }, (_, n) => n);
    expect(done).toEqual(order);
    const rows = await sql<{ n: number }>`select n from log order by rowid`.execute(db);
    expect(rows.rows.map((r) => r.n)).toEqual([-1, ...order]);
    await db.destroy();
  });
});
