import type { Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import {
  expectBalanced,
  fundedWallet,
  type LeaseTestNode,
  ledgerOf,
  type OperatorLedger,
  postJson,
  satOffer,
  startLeaseNode,
  sumOf,
  tokenOf,
} from '../../helpers/lease-node.js';
import { startTrustedMint, type TrustedMint } from '../../helpers/payout-fixtures.js';
import { testStoreIsPostgres } from '../../helpers/postgres.js';

/**
 * A payout racing the refunds of leases that end while it is paid, at a trusted mint (where the
 * payout melts the very ecash the refunds are swapped out of) and at the node's own mint. Runs on
 * SQLite and on PostgreSQL (vitest project `postgres`). Each refund must be given once and redeem
 * in full, the payout pay only earnings (never money held for a running lease or owed back), and
 * the ledger and both mints' books agree afterwards.
 */
const OPERATOR = 'operator-token-for-payout-races-001';
// 1 sat a second: a 600 s lease holds 600 sat.
const offer = { ...satOffer('sec', 0.25, 3600), min_seconds: 60 };
let now = Date.now();
let trusted: TrustedMint;
let renter: LeaseTestNode;
const operatorWallet = new FakeLightningBackend();

beforeAll(async () => {
  trusted = await startTrustedMint({ prefix: 'payout-race-mint', postgres: testStoreIsPostgres() });
  renter = await startLeaseNode(
    { trustedMints: [trusted.mintUrl], operatorToken: OPERATOR, offers: [offer] },
    undefined,
    { clock: () => new Date(now) },
  );
});
afterAll(async () => {
  await renter?.close();
  await trusted?.close();
});

const ledger = () => ledgerOf(renter.url, OPERATOR);
const auth = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });
const payout = async (sat: number, from: string) =>
  postJson(
    `${renter.url}/v1/operator/payout`,
    { to: (await operatorWallet.createInvoice(Amount.of(sat), 'payout')).bolt11, from },
    auth(OPERATOR),
  );
const figuresAt = (books: OperatorLedger, mint: 'own' | 'trusted') =>
  mint === 'own' ? books.by_mint.own : books.by_mint.trusted[0]!;

/** A 600 s lease paid exactly at `mintUrl`; its answer and the wallet that paid. */
async function rentAt(mintUrl: string): Promise<{ lease: Record<string, unknown>; wallet: Wallet }> {
  const { wallet, proofs } = await fundedWallet(mintUrl, 600);
  const paid = await tokenOf(wallet, mintUrl, proofs, 600);
  const created = await postJson(
    `${renter.url}/v1/leases`,
    { offer: 'sec', seconds: 600, image: 'busybox' },
    { 'x-cashu': paid.token },
  );
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return { lease: created.body, wallet };
}

const stop = (lease: Record<string, unknown>) =>
  postJson(`${renter.url}/v1/leases/${lease.id}`, undefined, auth(lease.token), 'DELETE');

describe('a payout racing the refunds of leases ending meanwhile', () => {
  for (const mint of ['trusted', 'own'] as const) {
    it(`at the ${mint} mint: each refund given once and whole, the payout only from earnings, books agree`, async () => {
      const mintUrl = mint === 'own' ? renter.mintUrl : trusted.mintUrl;
      // Earnings: two leases used for half their time (300 sat charged each, 300 refunded).
      const earned = [await rentAt(mintUrl), await rentAt(mintUrl)];
      now += 300_000;
      for (const e of earned) expect((await stop(e.lease)).body.refunded).toBe(300);
      const before = await ledger();
      const unpaid = figuresAt(before, mint).unpaid;
      expect(unpaid).toBeGreaterThanOrEqual(600);

      // Three more leases, running (held, not earnings) until they are stopped during the payout.
      const running = [await rentAt(mintUrl), await rentAt(mintUrl), await rentAt(mintUrl)];
      now += 100_000;
      const amount = 400;
      const [out, ...stops] = await Promise.all([
        payout(amount, mint === 'own' ? 'own' : trusted.mintUrl),
        ...running.map((r) => stop(r.lease)),
      ]);
      expect(out.status, JSON.stringify(out.body)).toBe(200);
      expect(out.body).toMatchObject({ paid: amount, state: 'paid' });

      // Each refund: 500 sat (500 s unused), the same token on every DELETE, redeemed in full once.
      for (const [i, s] of stops.entries()) {
        expect(s.status, JSON.stringify(s.body)).toBe(200);
        expect(s.body.refunded).toBe(500);
        expect((await stop(running[i]!.lease)).body).toEqual(s.body);
        const wallet = running[i]!.wallet;
        expect(sumOf(await wallet.receive(String(s.body.refund)))).toBe(500);
        await expect(wallet.receive(String(s.body.refund))).rejects.toThrow();
      }

      const books = await ledger();
      expect(expectBalanced(books)).toEqual([]);
      const at = figuresAt(books, mint);
      const was = figuresAt(before, mint);
      // The payout came out of earnings (paid_out), the three stopped leases added theirs (100 each).
      expect(at.paid_out).toBe(was.paid_out + amount + Number(out.body.fee));
      expect(at.held).toBe(0);
      expect(at.charged).toBe(was.charged + 300);
      expect(at.unpaid).toBe(was.unpaid + 300 - amount - Number(out.body.fee));
      expect(books.payout_pending).toBe(0);
      // The trusted mint's own books: every sat it issued is ecash out there or came in.
      const theirs = await trusted.books();
      expect(theirs.outstanding).toBe(theirs.lightning_in - theirs.lightning_out);
    });
  }
});
