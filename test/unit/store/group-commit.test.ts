import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../../src/store/group-commit.js';

/**
 * Group commit on a SQLite file (WAL, synchronous=FULL, as the node opens it): the work of one
 * event-loop turn in one transaction, each piece in its own savepoint, every caller answered only
 * after the COMMIT. What is committed is read through a second connection, as another process
 * (or the node after a crash) would see it.
 */
interface Tables {
  spent: { y: string };
  rows: { id: string; parent: string | null };
}

const dir = mkdtempSync(join(tmpdir(), 'alacarte-group-commit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function open() {
  const file = join(dir, `store-${files++}.sqlite`);
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.exec(`create table spent (y text primary key);
    create table rows (id text primary key,
      parent text references rows(id) deferrable initially deferred)`);
  let transactions = 0;
  const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) });
  const transaction = db.transaction.bind(db);
  db.transaction = () => {
    transactions++;
    return transaction();
  };
  const other = new SQLite(file, { readonly: true });
  const committed = (table: 'spent' | 'rows') =>
    (other.prepare(`select * from ${table} order by 1`).all() as Array<{ y?: string; id?: string }>).map(
      (r) => String(r.y ?? r.id),
    );
  const group = new GroupCommit(db, { grouped: true, inTransaction: () => sqlite.inTransaction });
  return {
    db,
    sqlite,
    group,
    committed,
    transactions: () => transactions,
    async close() {
      other.close();
      await db.destroy();
    },
  };
}

describe('GroupCommit', () => {
  it('commits the work of one turn once; a piece that fails is rolled back alone; each caller hears back after the commit', async () => {
    const s = open();
    await s.db.insertInto('spent').values({ y: 'taken-before' }).execute();
    const seenAtAnswer: string[][] = [];
    const spend = (ys: string[]) =>
      s.group
        .transact(async (trx) => {
          for (const y of ys) await trx.insertInto('spent').values({ y }).execute();
          return ys.length;
        })
        .then(
          (n) => {
            seenAtAnswer.push(s.committed('spent'));
            return n;
          },
          (err) => {
            seenAtAnswer.push(s.committed('spent'));
            throw err;
          },
        );
    const results = await Promise.allSettled([
      spend(['a1', 'a2']),
      // Its second proof was spent before: none of its rows may stay.
      spend(['b1', 'taken-before']),
      spend(['c1']),
      // The same proof twice in one turn: the first wins, the second fails alone.
      spend(['a1']),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/UNIQUE/);
    expect(s.transactions()).toBe(1);
    const all = ['a1', 'a2', 'c1', 'taken-before'];
    expect(s.committed('spent')).toEqual(all);
    // Every caller, failed or not, was answered with the whole batch already on disk.
    expect(seenAtAnswer).toEqual([all, all, all, all]);
    await s.close();
  });

  it('stores nothing of the batch and fails every caller when the COMMIT fails', async () => {
    const s = open();
    const results = await Promise.allSettled([
      s.group.transact((trx) => trx.insertInto('rows').values({ id: 'fine', parent: null }).execute()),
      // A deferred foreign key is checked at COMMIT only: the COMMIT fails.
      s.group.transact((trx) => trx.insertInto('rows').values({ id: 'orphan', parent: 'nobody' }).execute()),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/FOREIGN KEY/);
    expect(s.committed('rows')).toEqual([]);
    expect(s.sqlite.inTransaction).toBe(false);
    // The store goes on: the next turn commits.
    await s.group.transact((trx) => trx.insertInto('rows').values({ id: 'next', parent: null }).execute());
    expect(s.committed('rows')).toEqual(['next']);
    await s.close();
  });

  it('fails the batch when the engine ends the transaction under a piece of work, rather than go on outside it', async () => {
    const s = open();
    const results = await Promise.allSettled([
      s.group.transact((trx) => trx.insertInto('spent').values({ y: 'first' }).execute()),
      // As SQLite does by itself on an I/O error or a full disk.
      s.group.transact(async (trx) => {
        await sql`rollback`.execute(trx);
      }),
      s.group.transact((trx) => trx.insertInto('spent').values({ y: 'after' }).execute()),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(s.committed('spent')).toEqual([]);
    await s.close();
  });

  it('gives each piece of work its own transaction when not grouped', async () => {
    const s = open();
    const single = new GroupCommit(s.db, { grouped: false });
    const results = await Promise.allSettled([
      single.transact((trx) => trx.insertInto('spent').values({ y: 'x' }).execute()),
      single.transact((trx) => trx.insertInto('spent').values({ y: 'x' }).execute()),
      single.transact((trx) => trx.insertInto('spent').values({ y: 'y' }).execute()),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(s.transactions()).toBe(3);
    expect(s.committed('spent')).toEqual(['x', 'y']);
    await s.close();
  });
});
