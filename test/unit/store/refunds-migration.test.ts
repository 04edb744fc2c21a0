import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { describe, expect, it } from 'vitest';
import { leaseBooks } from '../../../src/leases/ledger.js';
import { MIGRATIONS } from '../../../src/store/migrations/index.js';
import type { Tables } from '../../../src/store/schema.js';

const own = 'http://127.0.0.1:8402/mint';
const ext = 'https://ext.example/mint';

function migrator(db: Kysely<Tables>): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: async () => Object.fromEntries(MIGRATIONS.map((m) => [m.name, m.migration])) },
  });
}

describe('migration 0004-refunds', () => {
  it('books refunds made before it at the mint of the lease’s first payment, as they were paid', async () => {
    const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: new SQLite(':memory:') }) });
    try {
      expect((await migrator(db).migrateTo('0002-leases')).error).toBeUndefined();
      const lease = (id: string, state: 'stopped' | 'running', held: number, refunded: number) => ({
        id,
        offer_id: 'small',
        offer_json: '{}',
        image: 'busybox',
        state,
        created_at: 1,
        held,
        refunded,
        unit: 'sat',
        credential_hash: `h-${id}`,
        ports_json: '{}',
      });
      const payment = (key: string, leaseId: string, mint: string, kept: number) => ({
        key,
        lease_id: leaseId,
        purpose: 'create' as const,
        rail: 'cashu',
        mint_url: mint,
        amount: kept,
        kept,
        change: 0,
        fee: 0,
        seconds: 3600,
        created_at: 1,
      });
      await db
        .insertInto('leases')
        .values([lease('a', 'stopped', 120, 100), lease('b', 'stopped', 60, 0), lease('c', 'running', 60, 0)])
        .execute();
      await db
        .insertInto('payments')
        .values([
          payment('k1', 'a', ext, 60),
          { ...payment('k2', 'a', own, 60), purpose: 'extend' },
          payment('k3', 'b', own, 60),
          payment('k4', 'c', ext, 60),
        ])
        .execute();

      expect((await migrator(db).migrateToLatest()).error).toBeUndefined();
      expect(await db.selectFrom('lease_refunds').selectAll().execute()).toEqual([
        { lease_id: 'a', mint_url: ext, position: 0, amount: 100 },
      ]);
      const books = await leaseBooks(db, 'sat', [ext]);
      expect(books).toMatchObject({ received: 240, charged: 80, refunded: 100, held: 60, bounced: 0 });
      const none = { paid_out: 0, payout_pending: 0 };
      expect(books.byMint.own).toEqual({
        received: 120,
        charged: 120,
        refunded: 0,
        held: 0,
        bounced: 0,
        ...none,
        unpaid: 120,
        on_chain: 0,
        payable: 120,
      });
      // What the old code did (all from the first payment's mint) shows as it happened: more
      // refunded at the trusted mint than was kept there for the ended lease.
      expect(books.byMint.trusted).toEqual([
        {
          mint: ext,
          received: 120,
          charged: -40,
          refunded: 100,
          held: 60,
          bounced: 0,
          ...none,
          unpaid: -40,
          on_chain: 0,
          payable: 0,
        },
      ]);
    } finally {
      await db.destroy();
    }
  });
});
