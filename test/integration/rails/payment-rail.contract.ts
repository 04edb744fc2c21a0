import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { stateColumns } from '../../../src/leases/lease-record.js';
import {
  changeOf,
  type InspectedPayment,
  type Owed,
  type PaymentHeaders,
  type PaymentRail,
  type PaymentRequest,
  type PaymentSubject,
  type RecordPayment,
  type Redeemed,
} from '../../../src/rails/payment-rail.js';
import type { Database } from '../../../src/store/database.js';

/** One rail under test, wired to a real node's store and mint. */
export interface RailFixture {
  rail: PaymentRail;
  db: Database;
  /** Request headers carrying a fresh payment of `price` for `subject`, as a payer would send them. */
  pay(price: Amount, subject: PaymentSubject): Promise<PaymentHeaders>;
  /**
   * What a payment whose record failed has become: `untouched` (the rail takes money only with its
   * record: the payer's token still pays) or `returned` (the rail took it first — a swap at a
   * trusted mint, a paid invoice — and `giveBack` hands it back).
   */
  unused: 'untouched' | 'returned';
  /** Receives a token the rail gave back into a wallet of its mint (a swap there); what it was worth. */
  receive(token: string): Promise<number>;
  close(): Promise<void>;
}

const subject: PaymentSubject = { kind: 'create', offer: 'small', seconds: 3600, image: 'busybox' };

/**
 * The PaymentRail contract (ARCHITECTURE.md, port PaymentRail) every rail passes. In, one call:
 * `redeem(request, price)` finds no payment in a request without one (the caller's 402); lets the
 * caller admit the payment by its idempotency key before any money moves (a replay is recognised
 * there); answers Redeemed (the key, the amount taken, the change) with `record` run once in the
 * transaction that takes it, or takes nothing when `record` fails or the payment is refused; the
 * same payment never pays twice. Out, one call (`giveBack`): the change `redeem` booked, a refund
 * booked in the transaction that owes it, a payment that bought nothing — each a token a wallet
 * takes at the rail's mint, the same on every call.
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
      Number(
        (
          await sql<{ n: number }>`select count(*) as n from contract_records where key = ${key}`.execute(
            f.db,
          )
        ).rows[0]?.n,
      );
    const record = (key: string) => async (trx: Database) => {
      await sql`insert into contract_records (key) values (${key})`.execute(trx);
    };
    /** A request whose `admit` notes every payment it is asked about, and lets it through. */
    const request = (headers: PaymentHeaders, rec: RecordPayment) => {
      const admitted: InspectedPayment[] = [];
      const req: PaymentRequest = {
        headers,
        subject,
        admit: async (p) => {
          admitted.push(p);
        },
        record: rec,
      };
      return { req, admitted };
    };

    it('challenges a request without a payment, and redeeming it finds none (absent), taking nothing', async () => {
      const challenge = await f.rail.challenge(price, subject);
      expect(Object.keys(challenge.headers).length).toBeGreaterThan(0);
      expect(challenge.instructions).not.toBe('');
      const { req, admitted } = request({}, async () => {
        throw new Error('nothing to record');
      });
      const none = await f.rail.redeem(req, price);
      expect(none).toMatchObject({ ok: false, code: 'payment_required', absent: true });
      expect(admitted).toEqual([]);
    });

    it('lets the caller admit a payment by its key before any money moves, then takes it once with its record', async () => {
      const headers = await f.pay(price, subject);

      // Refused in admit (the caller's replay check, a lease that cannot be sold): nothing taken.
      let first: InspectedPayment | undefined;
      const refused = await f.rail
        .redeem(
          {
            headers,
            subject,
            admit: async (p) => {
              first = p;
              throw new Error('not admitted');
            },
            record: async () => {
              throw new Error('never recorded');
            },
          },
          price,
        )
        .catch((err: Error) => err);
      expect(refused).toEqual(new Error('not admitted'));
      if (!first) throw new Error('admit was not called');
      expect(first.rail).toBe(f.rail.id);
      expect(first.amount.gte(price)).toBe(true);
      expect(first.key).toMatch(/^[0-9a-f]{64}$/);
      const key = first.key;

      // A record that fails takes nothing either: the same payment still pays afterwards.
      const failing = await f.rail
        .redeem(request(headers, async () => Promise.reject(new Error('the record failed'))).req, price)
        .catch((err: Error) => err);
      expect(failing).toEqual(new Error('the record failed'));
      expect(await records(key)).toBe(0);

      let seen: Redeemed | undefined;
      const paying = request(headers, async (trx, r) => {
        seen = r;
        await record(key)(trx);
      });
      const redeemed = await f.rail.redeem(paying.req, price);
      // One answer names the key, the amount taken and the change, as the record saw them.
      if (!redeemed.ok) throw new Error(`redeem: ${redeemed.message}`);
      expect(paying.admitted.map((p) => p.key)).toEqual([key]);
      expect(redeemed).toBe(seen);
      expect(redeemed.key).toBe(key);
      expect(redeemed.rail).toBe(f.rail.id);
      expect(redeemed.amount.toString()).toBe(first.amount.toString());
      expect(redeemed.taken.toString()).toBe(price.toString());
      expect(redeemed.change.toString()).toBe(first.amount.sub(price).toString());
      expect(await records(key)).toBe(1);

      // Presented again it is the same payment: admit sees the same key before anything moves
      // (where the lease service answers it again). Let through all the same, it never pays a
      // second time: the rail refuses it (token_spent), or — a trusted mint resumes its finished
      // swap — the caller's record, keyed by the payment key like the payments table, refuses it
      // in the same transaction.
      const replay = request(headers, record(key));
      const twice = await f.rail
        .redeem(replay.req, price)
        .catch((err: Error) => ({ ok: false as const, code: 'thrown', message: err.message }));
      expect(twice.ok).toBe(false);
      expect(replay.admitted.map((p) => p.key)).toEqual([key]);
      expect(await records(key)).toBe(1);
    });

    it('refuses a payment worth less than the price without taking it: the same payment pays the right price', async () => {
      const headers = await f.pay(price, subject);
      const more = price.add(Amount.of(1));
      const { req } = request(headers, async () => {
        throw new Error('never recorded');
      });
      const short = await f.rail.redeem(req, more);
      expect(short).toMatchObject({ ok: false, code: 'insufficient_amount' });
      const paid = request(headers, async (trx, r) => record(r.key)(trx));
      const redeemed = await f.rail.redeem(paid.req, price);
      if (!redeemed.ok) throw new Error(`redeem: ${redeemed.message}`);
      expect(await records(redeemed.key)).toBe(1);
    });

    it('gives back, one call each, the change and a refund of what it took, and a payment that bought nothing', async () => {
      // Paid 5 over the price: 5 come back as change.
      const headers = await f.pay(price.add(Amount.of(5)), subject);
      const leaseId = `lse_contract${randomBytes(6).toString('hex')}`;
      const redeemed = await f.rail.redeem(
        request(headers, (trx, r) => recordLease(trx, leaseId, r)).req,
        price,
      );
      if (!redeemed.ok) throw new Error(`redeem: ${redeemed.message}`);
      expect(redeemed.change.toNumber()).toBe(5);

      // The change, booked by redeem, shown on demand: the same token on every call.
      const change: Owed = { kind: 'parts', parts: [changeOf(redeemed)] };
      const [shown, ...none] = await f.rail.giveBack(change);
      expect(none).toEqual([]);
      if (!shown?.token) throw new Error('no change token');
      expect(shown.amount.toNumber()).toBe(5);
      expect((await f.rail.giveBack(change))[0]?.token).toBe(shown.token);
      expect(await f.receive(shown.token)).toBe(5);

      // A refund of 20: booked in the transaction that makes it owed (no token yet), then shown.
      const refund: Owed = {
        kind: 'parts',
        parts: [{ purpose: 'refund', subject: leaseId, amount: Amount.of(20), source: redeemed.source }],
      };
      const booked = await f.db.transaction().execute((trx) => f.rail.giveBack(refund, trx));
      expect(booked.map((b) => ({ mint: b.mint, amount: b.amount.toNumber(), token: b.token }))).toEqual([
        { mint: shown.mint, amount: 20, token: null },
      ]);
      const [refunded] = await f.rail.giveBack(refund);
      if (!refunded?.token) throw new Error('no refund token');
      expect(refunded.mint).toBe(shown.mint);
      expect((await f.rail.giveBack(refund))[0]?.token).toBe(refunded.token);
      expect(await f.receive(refunded.token)).toBe(20);

      // Nothing owed, nothing given.
      expect(await f.rail.giveBack({ kind: 'parts', parts: [] })).toEqual([]);

      // A payment whose record failed (what it was for ended meanwhile): none of it was taken (its
      // payer's token still pays), or it comes back whole as a token, the same on every call.
      const unusedHeaders = await f.pay(price, subject);
      const unusedReq = request(unusedHeaders, async () => {
        throw new Error('the lease ended meanwhile');
      });
      const failed = await f.rail.redeem(unusedReq.req, price).catch((err: Error) => err);
      expect(failed).toBeInstanceOf(Error);
      const [payment] = unusedReq.admitted;
      if (!payment) throw new Error('the unused payment was not admitted');
      const back = await f.rail.giveBack({ kind: 'unused', payment, price });
      expect(back.length === 0 ? 'untouched' : 'returned').toBe(f.unused);
      if (back.length === 0) {
        const paid = await f.rail.redeem(request(unusedHeaders, record(payment.key)).req, price);
        expect(paid.ok).toBe(true);
      } else {
        expect(back).toHaveLength(1);
        const [given] = back;
        if (!given?.token) throw new Error('no token for the unused payment');
        expect(given.amount.toNumber()).toBe(price.toNumber());
        const again = await f.rail.giveBack({ kind: 'unused', payment, price });
        expect(again[0]?.token).toBe(given.token);
        expect(await f.receive(given.token)).toBe(price.toNumber());
      }
    });
  });
}

/** What the lease service records for a paid create: a pending lease and its payment row. */
async function recordLease(trx: Database, leaseId: string, redeemed: Redeemed): Promise<void> {
  await trx
    .insertInto('leases')
    .values({
      id: leaseId,
      offer_id: 'small',
      offer_json: '{}',
      image: 'busybox',
      ...stateColumns({ kind: 'pending' }),
      created_at: Date.now(),
      held: redeemed.taken.toNumber(),
      unit: redeemed.taken.unit,
      credential_hash: 'contract',
      ports_json: '{}',
    })
    .execute();
  await trx
    .insertInto('payments')
    .values({
      key: redeemed.key,
      lease_id: leaseId,
      purpose: 'create',
      rail: redeemed.rail,
      mint_url: redeemed.source,
      amount: redeemed.amount.toNumber(),
      kept: redeemed.taken.toNumber(),
      change: redeemed.change.toNumber(),
      fee: redeemed.fee.toNumber(),
      seconds: 3600,
      idempotency_hash: null,
      request_hash: null,
      created_at: Date.now(),
    })
    .execute();
}
