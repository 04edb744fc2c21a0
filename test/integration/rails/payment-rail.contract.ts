import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import type {
  PaymentHeaders,
  PaymentRail,
  PaymentSubject,
  Redeemed,
} from '../../../src/rails/payment-rail.js';
import type { Database } from '../../../src/store/database.js';

/** One rail under test, wired to a real node's store and mint. */
export interface RailFixture {
  rail: PaymentRail;
  db: Database;
  /** Request headers carrying a fresh payment of `price` for `subject`, as a payer would send them. */
  pay(price: Amount, subject: PaymentSubject): Promise<PaymentHeaders>;
  close(): Promise<void>;
}

const subject: PaymentSubject = { kind: 'create', offer: 'small', seconds: 3600, image: 'busybox' };

/**
 * The PaymentRail contract (ARCHITECTURE.md, port PaymentRail) every rail passes: a request without
 * a payment gets a challenge; a payment is read without moving money; redeeming runs `record` once
 * with the money taken, or takes nothing when `record` fails; the same payment never pays twice
 * and keeps its idempotency key.
 */
export function paymentRailContract(name: string, setup: () => Promise<RailFixture>): void {
  describe(`PaymentRail contract: ${name}`, () => {
    let f: RailFixture;
    const price = Amount.of(60);
    beforeAll(async () => {
      f = await setup();
      await sql`create table if not exists contract_records (key text primary key)`.execute(f.db);
    });
    afterAll(async () => {
      await f?.close();
    });
    const records = async (key: string) =>
      (await sql<{ n: number }>`select count(*) as n from contract_records where key = ${key}`.execute(f.db))
        .rows[0]?.n;
    const record = (key: string) => async (trx: Database) => {
      await sql`insert into contract_records (key) values (${key})`.execute(trx);
    };

    it('challenges a request without a payment, and finds none in it', async () => {
      const challenge = await f.rail.challenge(price, subject);
      expect(Object.keys(challenge.headers).length).toBeGreaterThan(0);
      expect(challenge.instructions).not.toBe('');
      expect(await f.rail.inspect({}, subject)).toBeUndefined();
    });

    it('reads a payment without taking it, then takes it once with its record', async () => {
      const headers = await f.pay(price, subject);
      const first = await f.rail.inspect(headers, subject);
      if (!first?.ok) throw new Error(`inspect: ${JSON.stringify(first)}`);
      const payment = first.payment;
      expect(payment.rail).toBe(f.rail.id);
      expect(payment.amount.gte(price)).toBe(true);
      expect(payment.key).toMatch(/^[0-9a-f]{64}$/);

      // A record that fails takes nothing: the same payment still pays afterwards.
      const failing = await f.rail
        .redeem(payment, price, async () => {
          throw new Error('the record failed');
        })
        .catch((err: Error) => err);
      expect(failing).toBeInstanceOf(Error);
      expect(await records(payment.key)).toBe(0);

      const again = await f.rail.inspect(headers, subject);
      if (!again?.ok) throw new Error('inspect again');
      expect(again.payment.key).toBe(payment.key);
      let seen: Redeemed | undefined;
      const redeemed = await f.rail.redeem(again.payment, price, async (trx, r) => {
        seen = r;
        await record(payment.key)(trx);
      });
      // One answer names the key, the amount taken and the change, as the record saw them.
      if (!redeemed.ok) throw new Error(`redeem: ${redeemed.message}`);
      expect(redeemed).toBe(seen);
      expect(redeemed.key).toBe(payment.key);
      expect(redeemed.rail).toBe(f.rail.id);
      expect(redeemed.taken.add(redeemed.change).add(redeemed.fee).gte(price)).toBe(true);
      expect(redeemed.taken.toString()).toBe(price.toString());
      expect(redeemed.change.toString()).toBe(payment.amount.sub(price).toString());
      expect(await records(payment.key)).toBe(1);

      // Presented again it is the same payment (same key), and it never pays a second time: the
      // rail refuses it (token_spent), or — a trusted mint resumes its finished swap — the
      // caller's record, keyed by the payment key like the payments table, refuses it in the
      // same transaction.
      const replay = await f.rail.inspect(headers, subject);
      if (replay?.ok) {
        expect(replay.payment.key).toBe(payment.key);
        const twice = await f.rail
          .redeem(replay.payment, price, record(payment.key))
          .catch((err: Error) => ({ ok: false as const, code: 'thrown', message: err.message }));
        expect(twice.ok).toBe(false);
      }
      expect(await records(payment.key)).toBe(1);
    });
  });
}
