import bolt11 from 'bolt11';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { bolt11NetworkParams } from '../../../src/lightning/bolt11.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import type { MintBooks } from '../../../src/mint/books.js';
import {
  expectBalanced,
  fundedWallet,
  type LeaseTestNode,
  ledgerOf,
  type OperatorLedger,
  postJson,
  tokenOf,
} from '../../helpers/lease-node.js';
import {
  earnAt,
  type PayoutNodes,
  startPayoutNodes,
  type TrustedMint,
  untilNoneRunning,
} from '../../helpers/payout-fixtures.js';
import { foreignInvoice } from '../../unit/lightning/test-invoices.js';

/**
 * An operator pays out what its node earned: from the own mint's Lightning (a payment that stays
 * pending a while, then resolves once), and by melting the ecash the node holds at a trusted mint
 * (another node's mint). Over-asking pays nothing; afterwards the ledger and both mints' books
 * agree.
 */
const OPERATOR = 'operator-token-for-payout-tests-000';
const PAY_DELAY_MS = 1500;

let nodes: PayoutNodes | undefined;
let trusted: TrustedMint;
let renter: LeaseTestNode;
/** The operator's own Lightning wallet, somewhere else: its invoices are foreign to both mints. */
const operatorWallet = new FakeLightningBackend();

beforeAll(async () => {
  nodes = await startPayoutNodes({
    prefix: 'payout-mint',
    operatorToken: OPERATOR,
    mint: { lightning: { payDelayMs: PAY_DELAY_MS } },
  });
  ({ trusted, renter } = nodes);
});
afterAll(() => nodes?.close());

const ledger = () => ledgerOf(renter.url, OPERATOR);
const invoice = async (sat: number) => (await operatorWallet.createInvoice(Amount.of(sat), 'payout')).bolt11;
const payout = (body: Record<string, unknown>) =>
  postJson(`${renter.url}/v1/operator/payout`, body, { authorization: `Bearer ${OPERATOR}` });
/** A signed BOLT11 invoice without an amount ("pay what you like"). */
function amountlessInvoice(): string {
  const unsigned = bolt11.encode({
    network: bolt11NetworkParams('bcrt'),
    timestamp: Math.floor(Date.now() / 1000),
    tags: [
      { tagName: 'payment_hash', data: '11'.repeat(32) },
      { tagName: 'payment_secret', data: '22'.repeat(32) },
      { tagName: 'description', data: 'payout' },
    ],
  });
  const signed = bolt11.sign(unsigned, Buffer.from('33'.repeat(32), 'hex')).paymentRequest;
  if (!signed) throw new Error('signing failed');
  return signed;
}
const trustedFigures = (books: OperatorLedger) => books.by_mint.trusted[0]!;

describe('operator payouts', () => {
  let start: OperatorLedger;
  let trustedStart: MintBooks;

  it('earns 300 sat at each mint, all of it unpaid', async () => {
    await earnAt(renter.url, renter.mintUrl);
    await earnAt(renter.url, trusted.mintUrl);
    start = await untilNoneRunning(renter.url, OPERATOR);
    trustedStart = await trusted.books();
    expect(start.by_mint.own).toMatchObject({ charged: 300, paid_out: 0, unpaid: 300 });
    expect(trustedFigures(start)).toMatchObject({ charged: 300, paid_out: 0, unpaid: 300 });
    expect(expectBalanced(start)).toEqual([]);
  });

  it('refuses bad requests with stable codes and pays nothing', async () => {
    expect((await payout({ to: 'lnbc1nonsense' })).body.error).toBe('invalid_invoice');
    expect((await payout({})).body.error).toBe('invalid_request');
    expect((await payout({ to: 123 })).body.error).toBe('invalid_request');
    expect((await payout({ to: 'x'.repeat(5000) })).body.error).toBe('invalid_request');
    const elsewhere = await payout({ to: await invoice(10), from: 'https://untrusted.example/mint' });
    expect([elsewhere.status, elsewhere.body.error]).toEqual([400, 'invalid_request']);
    // An amountless invoice is refused: the operator asks for an invoice of the amount to take.
    const amountless = await payout({ to: amountlessInvoice() });
    expect([amountless.status, amountless.body.error]).toEqual([400, 'amountless_invoice']);
    // The own mint's Lightning is on regtest: a mainnet invoice cannot be paid from it (the fake
    // backend used to "pay" it).
    const mainnet = foreignInvoice({ network: 'bc', amountMsat: 10_000n }).bolt11;
    expect((await payout({ to: mainnet, from: 'own' })).body).toEqual({
      error: 'invalid_invoice',
      message: "the invoice is for mainnet (lnbc…), this node's Lightning is on regtest",
    });
    const noToken = await postJson(`${renter.url}/v1/operator/payout`, { to: await invoice(1) });
    expect(noToken.status).toBe(401); // no operator token
    const tooMuch = await payout({ to: await invoice(601) });
    expect(tooMuch.status).toBe(409);
    expect(tooMuch.body.error).toBe('payout_too_large');
    const notThere = await payout({ to: await invoice(301), from: 'own' });
    expect(notThere.body.error).toBe('payout_too_large');
    expect(notThere.body.unpaid).toBe(300);
    const after = await ledger();
    expect(after.payouts).toEqual([]);
    expect(after.mint.lightning_out).toBe(start.mint.lightning_out);
  });

  it('pays out of the own mint: pending while Lightning works, then resolved exactly once', async () => {
    const first = await payout({ to: await invoice(200) });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ paid: 200, fee: 0, state: 'pending', source: 'own' });
    // One payout at a time: a second one waits for the first to resolve.
    const second = await payout({ to: await invoice(10) });
    expect(second.status).toBe(409);
    expect(second.body.error).toBe('payout_pending');
    const pending = await ledger();
    expect(pending.by_mint.own).toMatchObject({ paid_out: 0, unpaid: 300 - 200 - 2, payout_pending: 202 });
    expect(expectBalanced(pending)).toEqual([]);

    // The node keeps asking its backend: the ledger shows the payout paid without a new request.
    let books = await ledger();
    for (let i = 0; i < 50 && books.payouts[0]?.state === 'pending'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      books = await ledger();
    }
    // 101 sat is more than is left.
    const over = await payout({ to: await invoice(101), from: 'own' });
    expect(over.body.error).toBe('payout_too_large');
    books = await ledger();
    expect(books.payouts).toHaveLength(1);
    expect(books.payouts[0]).toMatchObject({ source: 'own', amount: 200, fee: 0, state: 'paid' });
    expect(books.by_mint.own).toMatchObject({ charged: 300, paid_out: 200, payout_pending: 0, unpaid: 100 });
    // The mint's books: 200 sat more went out over Lightning, no ecash was issued or redeemed.
    expect(books.mint.lightning_out).toBe(start.mint.lightning_out + 200);
    expect(books.mint.issued).toBe(start.mint.issued);
    expect(books.mint.redeemed).toBe(start.mint.redeemed);
    expect(expectBalanced(books)).toEqual([]);
  });

  it('pays out of the ecash held at the trusted mint, melted there', async () => {
    // The own mint has 100 unpaid: 250 sat can only come from the trusted mint.
    const paid = await payout({ to: await invoice(250) });
    expect(paid.status).toBe(200);
    expect(paid.body).toMatchObject({ paid: 250, fee: 0, state: 'paid', source: trusted.mintUrl });
    const books = await ledger();
    expect(trustedFigures(books)).toMatchObject({ charged: 300, paid_out: 250, unpaid: 50 });
    expect(expectBalanced(books)).toEqual([]);
    // The trusted mint paid 250 sat over Lightning and burnt as much of its ecash as it paid.
    const theirs = await trusted.books();
    expect(theirs.lightning_out).toBe(trustedStart.lightning_out + 250);
    expect(theirs.outstanding).toBe(trustedStart.outstanding - 250);
    expect(theirs.outstanding).toBe(theirs.lightning_in - theirs.lightning_out);
  });

  it('refuses more than the trusted mint holds for the node, then pays the rest with the change', async () => {
    // 50 sat are left there; the mint's fee reserve (2 sat) does not fit on top of 50.
    const over = await payout({ to: await invoice(50), from: trusted.mintUrl });
    expect(over.status).toBe(409);
    // What would fit is said: the unpaid earnings less the fee reserve the mint keeps back.
    expect(over.body).toMatchObject({ error: 'payout_too_large', unpaid: 50, payable: 48 });
    expect((await trusted.books()).lightning_out).toBe(trustedStart.lightning_out + 250);
    // 48 sat: the last kept proofs and the change of the first melt (restored from the node secret).
    const rest = await payout({ to: await invoice(48), from: trusted.mintUrl });
    expect(rest.body).toMatchObject({ paid: 48, fee: 0, state: 'paid' });
    const books = await ledger();
    expect(trustedFigures(books)).toMatchObject({ paid_out: 298, unpaid: 2 });
    expect(books.paid_out).toBe(200 + 298);
    expect(expectBalanced(books)).toEqual([]);
    const theirs = await trusted.books();
    expect(theirs.lightning_out).toBe(trustedStart.lightning_out + 298);
    expect(theirs.outstanding).toBe(theirs.lightning_in - theirs.lightning_out);
  });

  it('pays out what a lease stopped early left at the trusted mint, and its refund still redeems', async () => {
    const { wallet, proofs } = await fundedWallet(trusted.mintUrl, 3100);
    const paid = await tokenOf(wallet, trusted.mintUrl, proofs, 3000);
    const created = await postJson(
      `${renter.url}/v1/leases`,
      { offer: 'burst', seconds: 30, image: 'busybox' },
      { 'x-cashu': paid.token },
    );
    expect(created.status).toBe(201);
    await new Promise((r) => setTimeout(r, 1200));
    const stopped = await postJson(
      `${renter.url}/v1/leases/${created.body.id}`,
      undefined,
      { authorization: `Bearer ${String(created.body.token)}` },
      'DELETE',
    );
    expect(stopped.status).toBe(200);
    const refunded = Number(stopped.body.refunded);
    expect(refunded).toBeGreaterThan(0);
    const before = trustedFigures(await ledger());
    expect(before.unpaid).toBe(2 + 3000 - refunded);

    // All of it but the fee reserve: the refund swap's remainder and the earlier change pay it.
    const amount = before.unpaid - Math.max(2, Math.ceil((before.unpaid - 2) / 100));
    const out = await payout({ to: await invoice(amount), from: trusted.mintUrl });
    expect(out.body).toMatchObject({ paid: amount, state: 'paid' });
    const books = await ledger();
    expect(expectBalanced(books)).toEqual([]);
    expect(trustedFigures(books).paid_out).toBe(before.paid_out + amount + Number(out.body.fee));
    // The renter's refund was not touched by the payout: it redeems in full.
    const back = await wallet.receive(String(stopped.body.refund));
    expect(back.reduce((n, p) => n + Number(p.amount.toBigInt()), 0)).toBe(refunded);
    const theirs = await trusted.books();
    expect(theirs.lightning_out).toBe(trustedStart.lightning_out + 298 + amount);
    expect(theirs.outstanding).toBe(theirs.lightning_in - theirs.lightning_out);
  });
});
