import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../../src/store/group-commit.js';
import { WalSync } from '../../../src/store/wal-sync.js';

/**
 * Group commit with the log's fsync off the node's thread (wal-sync.ts), on a SQLite file in WAL
 * mode as the node opens it: nobody hears back before the fsync of the log returned, and only the
 * batch's own COMMIT runs without FULL.
 */
interface Tables {
  spent: { y: string };
}

const dir = mkdtempSync(join(tmpdir(), 'alacarte-wal-sync-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A WalSync whose fsyncs are counted and held until the test lets them go (or fail). */
class HeldSync extends WalSync {
  readonly fsyncs: Array<{ go: () => void; fail: (err: Error) => void; synchronousThen: number }> = [];
  real = false;

  constructor(private readonly conn: SQLite.Database) {
    super(conn);
  }

  protected override fsyncLog(): Promise<void> {
    const synchronousThen = Number(this.conn.pragma('synchronous', { simple: true }));
    if (this.real) return super.fsyncLog();
    return new Promise<void>((go, fail) => this.fsyncs.push({ go, fail, synchronousThen }));
  }
}

let files = 0;
function open() {
  const file = join(dir, `store-${files++}.sqlite`);
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.exec('create table spent (y text primary key)');
  const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) });
  const walSync = new HeldSync(sqlite);
  const group = new GroupCommit(db, { grouped: true, inTransaction: () => sqlite.inTransaction, walSync });
  const other = new SQLite(file, { readonly: true });
  const committed = () =>
    (other.prepare('select y from spent order by 1').all() as { y: string }[]).map((r) => r.y);
  /** The connection's synchronous level inside each piece of work (1 NORMAL, 2 FULL). */
  const levels: number[] = [];
  const spend = (y: string) =>
    group.transact(async (trx) => {
      levels.push(Number(sqlite.pragma('synchronous', { simple: true })));
      await trx.insertInto('spent').values({ y }).execute();
      return y;
    });
  return {
    db,
    sqlite,
    walSync,
    spend,
    levels,
    committed,
    async close() {
      other.close();
      await db.destroy();
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('GroupCommit with the log synced off the thread (WalSync)', () => {
  it('answers the callers of a batch only once the log is fsynced, and keeps FULL for everything else', async () => {
    const s = open();
    let answered = 0;
    const batch = [s.spend('a'), s.spend('b')].map((p) =>
      p.then((y) => {
        answered++;
        return y;
      }),
    );
    for (let i = 0; i < 10 && s.walSync.fsyncs.length === 0; i++) await tick();
    // Committed without fsync (NORMAL) — another connection sees it — but not yet known durable:
    // nobody is told.
    expect(s.levels).toEqual([1, 1]);
    expect(s.committed()).toEqual(['a', 'b']);
    expect(s.walSync.fsyncs).toHaveLength(1);
    await tick();
    expect(answered).toBe(0);
    // The connection is back to FULL before the fsync, so other transactions meanwhile are durable
    // on their own.
    expect(s.walSync.fsyncs[0]!.synchronousThen).toBe(2);
    await s.db.insertInto('spent').values({ y: 'outside' }).execute();
    s.walSync.fsyncs[0]!.go();
    expect(await Promise.all(batch)).toEqual(['a', 'b']);
    expect(answered).toBe(2);
    await s.close();
  });

  it('fails every caller of the batch when the fsync fails', async () => {
    const s = open();
    const batch = Promise.allSettled([s.spend('a'), s.spend('b')]);
    for (let i = 0; i < 10 && s.walSync.fsyncs.length === 0; i++) await tick();
    s.walSync.fsyncs[0]!.fail(new Error('EIO: i/o error, fsync'));
    const results = await batch;
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/EIO/);
    await s.close();
  });

  it('shares fsyncs: callers while one runs wait for the next one, at most one queued', async () => {
    const s = open();
    const first = s.walSync.sync();
    // Started before these calls' writes, maybe: they need one that starts after.
    const later = [s.walSync.sync(), s.walSync.sync(), s.walSync.sync()];
    expect(s.walSync.fsyncs).toHaveLength(1);
    let laterDone = false;
    void Promise.all(later).then(() => (laterDone = true));
    s.walSync.fsyncs[0]!.go();
    await first;
    for (let i = 0; i < 10 && s.walSync.fsyncs.length < 2; i++) await tick();
    expect(s.walSync.fsyncs).toHaveLength(2);
    expect(laterDone).toBe(false);
    s.walSync.fsyncs[1]!.go();
    await Promise.all(later);
    expect(s.walSync.fsyncs).toHaveLength(2);
    await s.close();
  });

  it('syncs the real log file of a store on disk', async () => {
    const s = open();
    s.walSync.real = true;
    expect(await Promise.all([s.spend('a'), s.spend('b')])).toEqual(['a', 'b']);
    expect(s.committed()).toEqual(['a', 'b']);
    await s.close();
  });

  it('is used only for a store on disk in WAL mode', () => {
    const mem = new SQLite(':memory:');
    expect(WalSync.for(mem)).toBeUndefined();
    mem.close();
    const journal = new SQLite(join(dir, 'rollback-journal.sqlite'));
    journal.pragma('journal_mode = DELETE');
    expect(WalSync.for(journal)).toBeUndefined();
    journal.pragma('journal_mode = WAL');
    expect(WalSync.for(journal)).toBeInstanceOf(WalSync);
    journal.close();
  });
});
