import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUniqueViolation } from '../../../src/mint/store/mint-store.js';
import { PostgresSpendWriter, type SpendWriter } from '../../../src/mint/store/postgres-spend.js';
import { sqliteSpendWriter } from '../../../src/mint/store/sqlite-spend.js';
import type { MintProofsTable, MintSignaturesTable } from '../../../src/mint/store/tables.js';
import type { Database, Store } from '../../../src/store/database.js';
import { migrate } from '../../../src/store/database.js';

/**
 * Opens stores for the contract: `open()` a fresh, migrated, empty store; `connect()` another
 * connection (another process's, in effect) to the store the last `open()` made.
 */
export interface StoreUnderTest {
  open(): Promise<Store>;
  connect(): Promise<Store>;
}

const hex = () => randomBytes(32).toString('hex');

function proof(y: string, amount = 8): MintProofsTable {
  return {
    y,
    keyset_id: '00abcdef',
    amount,
    witness: null,
    state: 'SPENT',
    melt_quote_id: null,
    created_at: 1,
  };
}

function signature(b_: string, amount = 8): MintSignaturesTable {
  return {
    b_,
    keyset_id: '00abcdef',
    amount,
    c_: hex(),
    dleq_e: hex(),
    dleq_s: hex(),
    melt_quote_id: null,
    mint_quote_id: null,
    created_at: 1,
  };
}

function lease(id: string, state: 'pending' | 'running' = 'running', held: number | bigint = 100) {
  return {
    id,
    offer_id: 'small',
    offer_json: '{}',
    image: 'busybox',
    state,
    created_at: Date.now(),
    started_at: null,
    expires_at: Date.now() + 60_000,
    ended_at: null,
    held: held as number,
    refunded: 0,
    unit: 'sat',
    credential_hash: hex(),
    fail_reason: null,
    ports_json: '{}',
  };
}

function payment(leaseId: string, key: string, idempotencyHash: string | null = null) {
  return {
    key,
    lease_id: leaseId,
    purpose: 'create' as const,
    rail: 'cashu',
    mint_url: 'http://127.0.0.1:1/mint',
    amount: 100,
    kept: 100,
    change: 0,
    fee: 0,
    seconds: 60,
    idempotency_hash: idempotencyHash,
    request_hash: null,
    created_at: Date.now(),
  };
}

/** The swap's fast commit of each dialect, as the mint builds it (mint.ts). */
function spendWriter(store: Store): SpendWriter {
  if (store.sqlite) return sqliteSpendWriter(store.db, store.sqlite);
  if (store.postgres) return new PostgresSpendWriter(store.postgres);
  throw new Error('store without a connection');
}

/**
 * What the node relies on from its store, in either dialect: schema from empty, integers exact,
 * one spend per proof and one end per lease under racing connections, the unique keys the money
 * rules stand on, and transactions that roll back.
 */
export function describeStoreContract(name: string, target: StoreUnderTest | string): void {
  describe(`store contract (${name})`, () => {
    const skip = typeof target === 'string' ? target : undefined;
    let store: Store;
    let other: Store;
    let db: Database;
    beforeAll(async () => {
      if (typeof target === 'string') return;
      store = await target.open();
      other = await target.connect();
      db = store.db;
    });
    afterAll(async () => {
      await other?.db.destroy();
      await store?.db.destroy();
    });

    it.skipIf(skip)(`migrates from empty to every table, and again as a no-op ${skip ?? ''}`, async () => {
      const tables = (await db.introspection.getTables()).map((t) => t.name).sort();
      for (const t of [
        'bounced_payments',
        'l402_payments',
        'lease_refunds',
        'leases',
        'mint_keysets',
        'mint_melt_quotes',
        'mint_mint_quotes',
        'mint_proofs',
        'mint_signatures',
        'payments',
        'payouts',
      ])
        expect(tables).toContain(t);
      await migrate(db);
      await migrate(other.db);
    });

    it.skipIf(skip)('hands integers back exactly: numbers below 2^53, bigints beyond', async () => {
      const big = 2n ** 60n + 7n;
      await db
        .insertInto('leases')
        .values(lease('big', 'running', big))
        .execute();
      await db
        .insertInto('leases')
        .values(lease('small', 'running', 12345))
        .execute();
      const rows = await db.selectFrom('leases').select(['id', 'held', 'created_at']).orderBy('id').execute();
      expect(rows[0]).toMatchObject({ id: 'big', held: big });
      expect(rows[1]).toMatchObject({ id: 'small', held: 12345 });
      expect(typeof rows[1]?.created_at).toBe('number');
      // Sums and counts, as the books read them (ledger.ts, books.ts).
      const sum = await db
        .selectFrom('leases')
        .select([sql<number>`coalesce(sum(held), 0)`.as('n'), sql<number>`count(*)`.as('count')])
        .executeTakeFirstOrThrow();
      expect(BigInt(sum.n)).toBe(big + 12345n);
      expect(sum.count).toBe(2);
      const none = await db
        .selectFrom('leases')
        .where('id', '=', 'none')
        .select(sql<number>`coalesce(sum(held), 0)`.as('n'))
        .executeTakeFirstOrThrow();
      expect(none.n).toBe(0);
      await db.deleteFrom('leases').where('id', 'in', ['big', 'small']).execute();
    });

    it.skipIf(skip)('spends a proof once when two connections race to spend it', async () => {
      const y = hex();
      const writers = [spendWriter(store), spendWriter(other)];
      for (let round = 0; round < 20; round++) {
        const ys = [hex(), hex()];
        const outcomes = await Promise.allSettled(
          writers.map((w, i) => w.commit([proof(y), proof(ys[i]!)], [signature(hex())])),
        );
        const won = outcomes.filter((o) => o.status === 'fulfilled').length;
        expect(won).toBe(round === 0 ? 1 : 0);
        for (const o of outcomes) if (o.status === 'rejected') expect(isUniqueViolation(o.reason)).toBe(true);
      }
      for (const w of writers) await w.close?.();
      // The losers' other proof and their signatures rolled back with them: only the winner's rows.
      const proofs = await db
        .selectFrom('mint_proofs')
        .select(sql<number>`count(*)`.as('n'))
        .executeTakeFirstOrThrow();
      const sigs = await db
        .selectFrom('mint_signatures')
        .select(sql<number>`count(*)`.as('n'))
        .executeTakeFirstOrThrow();
      expect(proofs.n).toBe(2);
      expect(sigs.n).toBe(1);
    });

    it.skipIf(skip)('spends a proof once through the query builder too (the portable path)', async () => {
      const y = hex();
      // SQLite has one writer per store and a synchronous driver: a second connection in this
      // process would wait for the file lock on the event loop the first one needs to finish. The
      // node keeps one connection; racing transactions share it.
      const racer = store.dialect === 'sqlite' ? store : other;
      const outcomes = await Promise.allSettled(
        [store, racer].map((s) =>
          s.db.transaction().execute(async (trx) => {
            await trx.insertInto('mint_proofs').values(proof(y)).execute();
            await trx.insertInto('mint_signatures').values(signature(hex())).execute();
          }),
        ),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      const rejected = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
      expect(isUniqueViolation(rejected.reason)).toBe(true);
    });

    it.skipIf(skip)('ends a lease once when two connections race to end it', async () => {
      for (let i = 0; i < 10; i++) {
        const id = `race-${i}`;
        await db.insertInto('leases').values(lease(id)).execute();
        const results = await Promise.all(
          [store, other].map((s, n) =>
            s.db
              .updateTable('leases')
              .set({ state: n === 0 ? 'stopped' : 'expired', ended_at: Date.now() })
              .where('id', '=', id)
              .where('state', 'in', ['pending', 'running'])
              .executeTakeFirst(),
          ),
        );
        expect(results.map((r) => Number(r.numUpdatedRows)).sort()).toEqual([0, 1]);
        const row = await db
          .selectFrom('leases')
          .select('state')
          .where('id', '=', id)
          .executeTakeFirstOrThrow();
        expect(['stopped', 'expired']).toContain(row.state);
      }
    });

    it.skipIf(skip)('keeps one payment per key and per Idempotency-Key, with a rising seq', async () => {
      await db.insertInto('leases').values(lease('paid')).execute();
      const key = hex();
      const idem = hex();
      const outcomes = await Promise.allSettled(
        [store, other].map((s) => s.db.insertInto('payments').values(payment('paid', key)).execute()),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      await db
        .insertInto('payments')
        .values(payment('paid', hex(), idem))
        .execute();
      await expect(
        db
          .insertInto('payments')
          .values(payment('paid', hex(), idem))
          .execute(),
      ).rejects.toSatisfy(isUniqueViolation);
      const seqs = await db
        .selectFrom('payments')
        .select('seq')
        .where('lease_id', '=', 'paid')
        .orderBy('seq')
        .execute();
      expect(seqs).toHaveLength(2);
      expect(seqs[1]!.seq).toBeGreaterThan(seqs[0]!.seq);
      expect(typeof seqs[0]!.seq).toBe('number');
    });

    it.skipIf(skip)('books a bounced payment once and one refund row per lease and mint', async () => {
      await db.insertInto('leases').values(lease('bounced')).execute();
      const key = hex();
      const row = {
        key,
        lease_id: 'bounced',
        mint_url: 'http://m',
        amount: 10,
        returned: 9,
        created_at: 1,
      };
      for (const s of [store, other, store])
        await s.db
          .insertInto('bounced_payments')
          .values(row)
          .onConflict((oc) => oc.column('key').doNothing())
          .execute();
      const bounced = await db.selectFrom('bounced_payments').selectAll().where('key', '=', key).execute();
      expect(bounced).toEqual([row]);
      await db
        .insertInto('lease_refunds')
        .values({ lease_id: 'bounced', mint_url: 'http://m', position: 0, amount: 5 })
        .execute();
      await expect(
        db
          .insertInto('lease_refunds')
          .values({ lease_id: 'bounced', mint_url: 'http://m', position: 1, amount: 5 })
          .execute(),
      ).rejects.toSatisfy(isUniqueViolation);
      // A refund names a lease that exists.
      await expect(
        db
          .insertInto('lease_refunds')
          .values({ lease_id: 'nobody', mint_url: 'http://m', position: 0, amount: 5 })
          .execute(),
      ).rejects.toThrow();
    });

    it.skipIf(skip)('allows one pending payout and one in-flight melt per invoice', async () => {
      const payout = (id: string) => ({
        id,
        source: 'mint',
        request: 'lnbc1',
        payment_hash: hex(),
        melt_quote_id: null,
        amount: 10,
        fee_reserve: 1,
        inputs: null,
        fee: null,
        state: 'pending' as const,
        reason: null,
        created_at: 1,
        resolved_at: null,
      });
      const outcomes = await Promise.allSettled(
        [store, other].map((s, i) =>
          s.db
            .insertInto('payouts')
            .values(payout(`p${i}`))
            .execute(),
        ),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      const l402 = {
        payment_hash: hex(),
        key: hex(),
        amount: 5,
        unit: 'sat',
        outcome: 'claimed' as const,
        created_at: 1,
      };
      await db.insertInto('l402_payments').values(l402).execute();
      await expect(other.db.insertInto('l402_payments').values(l402).execute()).rejects.toSatisfy(
        isUniqueViolation,
      );
    });

    it.skipIf(skip)('rolls a transaction back whole when it throws', async () => {
      const y = hex();
      await expect(
        db.transaction().execute(async (trx) => {
          await trx.insertInto('leases').values(lease('rolled-back')).execute();
          await trx.insertInto('mint_proofs').values(proof(y)).execute();
          throw new Error('changed my mind');
        }),
      ).rejects.toThrow('changed my mind');
      expect(await db.selectFrom('leases').select('id').where('id', '=', 'rolled-back').execute()).toEqual(
        [],
      );
      expect(await other.db.selectFrom('mint_proofs').select('y').where('y', '=', y).execute()).toEqual([]);
    });
  });
}
