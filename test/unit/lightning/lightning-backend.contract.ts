import { describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { type Bolt11Network, decodeBolt11 } from '../../../src/lightning/bolt11.js';
import type { LightningBackend, PaymentOutcome } from '../../../src/lightning/lightning-backend.js';
import { foreignInvoice, sha256Hex } from './test-invoices.js';

export interface LightningContractHarness {
  backend: LightningBackend;
  /** The network the backend's invoices are for; outside invoices in the suite use it too. */
  network: Bolt11Network;
  /** Gets an invoice the backend created paid by an outside payer (fake: let its settle delay pass). */
  payIncoming(bolt11: string): Promise<void>;
  /** An invoice the backend can pay and whose preimage proves the payment (regtest: another node's). */
  invoiceToPay(amount: Amount): Promise<string>;
  /**
   * A new backend instance with the same configuration and persisted cursor, as after a restart of
   * the node. Absent: the backend keeps nothing across restarts (say why at the skip).
   */
  restart?: () => Promise<LightningBackend>;
  /**
   * Holds new outgoing payments in flight at the node (longer than payInvoice waits) until
   * `resolve`. Absent when the node cannot be told to (a real node).
   */
  holdPayments?: {
    hold(): void;
    resolve(paymentHash: string, result: 'paid' | 'failed'): Promise<void>;
  };
  /** How many times the node really paid this hash (simulated nodes only). */
  timesPaid?: (paymentHash: string) => number;
  /** Why a case is skipped for this backend, by the harness member it lacks. */
  skipReasons?: { restart?: string; holdPayments?: string };
}

/** Real backends settle asynchronously: poll a bounded number of times instead of sleeping a fixed while. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let i = 0; i < 50 && !done(value); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await read();
  }
  return value;
}

const sat = (n: bigint | number) => Amount.of(n, 'sat');

/**
 * The behaviour every LightningBackend owes the mint. `setup` gives a fresh harness per case. Run it
 * from a `*.test.ts` file; a backend that cannot offer a case must skip it there and say why.
 */
export function lightningBackendContract(name: string, setup: () => Promise<LightningContractHarness>): void {
  describe(`LightningBackend contract: ${name}`, () => {
    it('issues a BOLT11 invoice for exactly the amount asked, with the memo and its payment hash', async () => {
      const { backend, network } = await setup();
      for (const amount of [1n, 21n, 1000n, 123_456_789n, 2n ** 32n + 1n]) {
        const created = await backend.createInvoice(sat(amount), `quote for ${amount}`);
        const decoded = decodeBolt11(created.bolt11);
        expect(decoded).toEqual({
          amountMsat: amount * 1000n,
          paymentHash: created.paymentHash,
          expiresAt: created.expiresAt,
          network,
          payeeNodeKey: expect.stringMatching(/^0[23][0-9a-f]{64}$/),
          description: `quote for ${amount}`,
        });
      }
    });

    it('gives every invoice its own payment hash', async () => {
      const { backend } = await setup();
      const created = await Promise.all([1, 2, 3, 4, 5].map(() => backend.createInvoice(sat(100), 'same')));
      expect(new Set(created.map((c) => c.paymentHash)).size).toBe(5);
      expect(new Set(created.map((c) => c.bolt11)).size).toBe(5);
    });

    it('refuses to invoice zero, another unit or an over-long memo', async () => {
      const { backend } = await setup();
      await expect(backend.createInvoice(sat(0), 'zero')).rejects.toThrow();
      await expect(backend.createInvoice(Amount.of(5, 'usd'), 'dollars')).rejects.toThrow();
      await expect(backend.createInvoice(sat(5), 'x'.repeat(640))).rejects.toThrow();
      await expect(backend.createInvoice(sat(5), 'x'.repeat(639))).resolves.toBeDefined();
    });

    it('reports an invoice unpaid until it is paid, then paid', async () => {
      const h = await setup();
      const created = await h.backend.createInvoice(sat(42), 'pay me');
      expect(await h.backend.invoiceState(created.paymentHash)).toBe('unpaid');
      await h.payIncoming(created.bolt11);
      const state = await eventually(
        () => h.backend.invoiceState(created.paymentHash),
        (s) => s === 'paid',
      );
      expect(state).toBe('paid');
    });

    it('tells its settlement listeners of an incoming payment, and stops when unsubscribed', async () => {
      const h = await setup();
      const heard: string[] = [];
      const unsubscribe = h.backend.onSettlement((hash) => heard.push(hash));
      try {
        const paid = await h.backend.createInvoice(sat(7), 'heard');
        expect(heard).toEqual([]);
        await h.payIncoming(paid.bolt11);
        await eventually(
          async () => heard,
          (list) => list.includes(paid.paymentHash),
        );
        expect(heard).toContain(paid.paymentHash);
        const unpaid = await h.backend.createInvoice(sat(8), 'never paid');
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(heard).not.toContain(unpaid.paymentHash);
      } finally {
        unsubscribe();
      }
      const after = await h.backend.createInvoice(sat(9), 'after unsubscribing');
      const count = heard.length;
      await h.payIncoming(after.bolt11);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(heard).toHaveLength(count);
    });

    it('pays an invoice and reveals the preimage of its payment hash', async () => {
      const h = await setup();
      const invoice = await h.invoiceToPay(sat(250));
      const paymentHash = decodeBolt11(invoice)?.paymentHash ?? '';
      const first = await h.backend.payInvoice(invoice, sat(10));
      expect(first.state).not.toBe('failed');
      const settled = await eventually(
        () => h.backend.paymentState(paymentHash),
        (o) => o.state !== 'pending',
      );
      expect(settled).toEqual({
        state: 'paid',
        preimage: expect.stringMatching(/^[0-9a-f]{64}$/),
        feePaid: expect.anything(),
      });
      const paid = settled as Extract<PaymentOutcome, { state: 'paid' }>;
      expect(sha256Hex(paid.preimage)).toBe(paymentHash);
      expect(sat(10).gte(paid.feePaid)).toBe(true);
    });

    it('answers a second payment of the same invoice with the first one', async () => {
      const h = await setup();
      const invoice = await h.invoiceToPay(sat(7));
      const paymentHash = decodeBolt11(invoice)?.paymentHash ?? '';
      await h.backend.payInvoice(invoice, sat(1));
      const first = await eventually(
        () => h.backend.paymentState(paymentHash),
        (o) => o.state !== 'pending',
      );
      expect(first.state).toBe('paid');
      expect(await h.backend.payInvoice(invoice, sat(1))).toEqual(first);
      if (h.timesPaid) expect(h.timesPaid(paymentHash)).toBe(1);
    });

    it('answers garbage, amountless and expired invoices with failed, not an exception', async () => {
      const h = await setup();
      const good = await h.invoiceToPay(sat(3));
      const corrupted = `${good.slice(0, 40)}${good[40] === 'q' ? 'p' : 'q'}${good.slice(41)}`;
      const amountless = foreignInvoice({ network: h.network }).bolt11;
      const expired = foreignInvoice({
        network: h.network,
        amountMsat: 3000n,
        timestamp: 1_496_314_658,
        expirySeconds: 60,
      }).bolt11;
      for (const bad of ['', 'hello', 'lnbc1', corrupted, 'x'.repeat(100_000), amountless, expired]) {
        const outcome = await h.backend.payInvoice(bad, sat(1));
        expect(outcome.state, bad.slice(0, 30)).toBe('failed');
      }
    });

    it('picks up a settlement that happened while it was down, from its persisted cursor', async (ctx) => {
      const h = await setup();
      if (!h.restart) return ctx.skip(h.skipReasons?.restart ?? 'no restart in this harness');
      const heard: string[] = [];
      const unsubscribe = h.backend.onSettlement((hash) => heard.push(hash));
      const before = await h.backend.createInvoice(sat(11), 'before the restart');
      await h.payIncoming(before.bolt11);
      await eventually(
        async () => heard,
        (list) => list.includes(before.paymentHash),
      );
      expect(heard).toContain(before.paymentHash);
      unsubscribe();
      // Down: nobody listens while this one is paid.
      const during = await h.backend.createInvoice(sat(12), 'while down');
      await h.payIncoming(during.bolt11);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(heard).not.toContain(during.paymentHash);
      const restarted = await h.restart();
      const heardAfter: string[] = [];
      const stop = restarted.onSettlement((hash) => heardAfter.push(hash));
      try {
        await eventually(
          async () => heardAfter,
          (list) => list.includes(during.paymentHash),
        );
        expect(heardAfter).toContain(during.paymentHash);
      } finally {
        stop();
      }
    });

    for (const result of ['paid', 'failed'] as const) {
      it(`keeps a payment that outlasts its wait pending until it ends (${result}), and never pays it twice`, async (ctx) => {
        const h = await setup();
        if (!h.holdPayments) return ctx.skip(h.skipReasons?.holdPayments ?? 'the node cannot hold payments');
        const invoice = await h.invoiceToPay(sat(30));
        const paymentHash = decodeBolt11(invoice)?.paymentHash ?? '';
        h.holdPayments.hold();
        // Two payments at once (both pass the "paid already?" check): the node's own refusal merges them.
        expect(
          await Promise.all([h.backend.payInvoice(invoice, sat(5)), h.backend.payInvoice(invoice, sat(5))]),
        ).toEqual([{ state: 'pending' }, { state: 'pending' }]);
        expect(await h.backend.paymentState(paymentHash)).toEqual({ state: 'pending' });
        // Paying again while in flight answers the attempt in flight.
        expect(await h.backend.payInvoice(invoice, sat(5))).toEqual({ state: 'pending' });
        await h.holdPayments.resolve(paymentHash, result);
        const ended = await eventually(
          () => h.backend.paymentState(paymentHash),
          (o) => o.state !== 'pending',
        );
        expect(ended.state).toBe(result);
        if (result === 'paid') {
          const paid = ended as Extract<PaymentOutcome, { state: 'paid' }>;
          expect(sha256Hex(paid.preimage)).toBe(paymentHash);
          expect(await h.backend.payInvoice(invoice, sat(5))).toEqual(ended);
        }
        if (h.timesPaid) expect(h.timesPaid(paymentHash)).toBe(result === 'paid' ? 1 : 0);
      });
    }

    it('says expired for a payment hash it never issued and failed for one it never paid', async () => {
      const { backend } = await setup();
      const unknown = 'ab'.repeat(32);
      expect(await backend.invoiceState(unknown)).toBe('expired');
      expect((await backend.paymentState(unknown)).state).toBe('failed');
    });
  });
}
