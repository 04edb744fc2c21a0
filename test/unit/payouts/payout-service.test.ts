import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import type { AlacarteError } from '../../../src/core/errors.js';
import { leaseBooks } from '../../../src/leases/ledger.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { OwnMintPayer } from '../../../src/payouts/own-mint-payer.js';
import { PayoutService } from '../../../src/payouts/payout-service.js';
import { MIGRATIONS } from '../../../src/store/migrations/index.js';
import type { Tables } from '../../../src/store/schema.js';

/**
 * The payout service on a store holding one ended lease that earned 100 sat at the own mint:
 * a payout pending when the process dies is resolved from the backend's state, once; two
 * processes paying out at the same time never pay more than was earned.
 */
let db: Kysely<Tables>;
let clock: number;
const payee = new FakeLightningBackend();
const invoice = async (sat: number) => (await payee.createInvoice(Amount.of(sat), 'payout')).bolt11;

const services: PayoutService[] = [];

function service(lightning: FakeLightningBackend): PayoutService {
  const created = new PayoutService({
    db,
    unit: 'sat',
    trustedMints: [],
    own: new OwnMintPayer(lightning, 'sat'),
    trusted: [],
  });
  services.push(created);
  return created;
}

async function own() {
  return (await leaseBooks(db, 'sat', [])).byMint.own;
}

beforeEach(async () => {
  clock = Date.now();
  db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: new SQLite(':memory:') }) });
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => Object.fromEntries(MIGRATIONS.map((m) => [m.name, m.migration])) },
  });
  expect((await migrator.migrateToLatest()).error).toBeUndefined();
  await db
    .insertInto('leases')
    .values({
      id: 'a',
      offer_id: 'small',
      offer_json: '{}',
      image: 'busybox',
      state: 'expired',
      created_at: 1,
      held: 100,
      refunded: 0,
      unit: 'sat',
      credential_hash: 'h',
      ports_json: '{}',
    })
    .execute();
  await db
    .insertInto('payments')
    .values({
      key: 'k',
      lease_id: 'a',
      purpose: 'create',
      rail: 'cashu',
      mint_url: 'http://127.0.0.1:8402/mint',
      amount: 100,
      kept: 100,
      change: 0,
      fee: 0,
      seconds: 3600,
      created_at: 1,
    })
    .execute();
});
afterEach(async () => {
  for (const s of services.splice(0)) s.close();
  await db.destroy();
});

describe('payouts across a crash', () => {
  it('a payment the backend finished while the node was down is booked paid, once', async () => {
    const lightning = new FakeLightningBackend({ payDelayMs: 5000, now: () => clock });
    const first = await service(lightning).payout(await invoice(90));
    expect(first).toMatchObject({ paid: 90, state: 'pending' });
    expect(await own()).toMatchObject({ unpaid: 100 - 90 - 2, payout_pending: 92 });
    // The process dies; the backend (a real node) pays meanwhile; a new process starts.
    clock += 6000;
    const restarted = service(lightning);
    await restarted.resolvePending();
    await restarted.resolvePending();
    expect(await own()).toMatchObject({ paid_out: 90, payout_pending: 0, unpaid: 10 });
    const rows = await db.selectFrom('payouts').selectAll().execute();
    expect(rows.map((r) => [r.amount, r.fee, r.state])).toEqual([[90, 0, 'paid']]);
    await expect(restarted.payout(await invoice(11))).rejects.toMatchObject({ code: 'payout_too_large' });
  });

  it('a payment the backend never made is booked failed and the money is unpaid again', async () => {
    const first = await service(new FakeLightningBackend({ payDelayMs: 60_000 })).payout(await invoice(90));
    expect(first.state).toBe('pending');
    // A backend that knows nothing of the payment (the fake forgets on restart): nothing was paid.
    const restarted = service(new FakeLightningBackend());
    const again = await restarted.payout(await invoice(100));
    expect(again).toMatchObject({ paid: 100, state: 'paid' });
    const rows = await db.selectFrom('payouts').select(['amount', 'state']).orderBy('created_at').execute();
    expect(rows.map((r) => r.state).sort()).toEqual(['failed', 'paid']);
    expect(await own()).toMatchObject({ paid_out: 100, unpaid: 0 });
  });

  it('two processes paying out at once never pay more than was earned', async () => {
    const results = await Promise.allSettled([
      service(new FakeLightningBackend()).payout(await invoice(80)),
      service(new FakeLightningBackend()).payout(await invoice(80)),
    ]);
    const paid = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    expect(paid).toHaveLength(1);
    expect(refused).toHaveLength(1);
    const reason = (refused[0] as PromiseRejectedResult).reason as AlacarteError;
    expect(['payout_pending', 'payout_too_large']).toContain(reason.code);
    expect(await own()).toMatchObject({ paid_out: 80, unpaid: 20 });
  });
});
