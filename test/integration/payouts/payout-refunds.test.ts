import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import {
  expectBalanced,
  fundedWallet,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  startLeaseNode,
  sumOf,
  tokenOf,
} from '../../helpers/lease-node.js';
import {
  BURST_OFFER,
  startTrustedMint,
  type TrustedMint,
  untilNoneRunning,
} from '../../helpers/payout-fixtures.js';

/**
 * A payout at a trusted mint that charges input fees never spends ecash a refund handed over: a
 * start that failed after payment (its refund, a token the renter has not redeemed yet, may be
 * the very proofs the node kept) comes before the lease that earned, and after the payout the
 * renter's refund still redeems in full; the ledger and the trusted mint's books agree.
 */
const OPERATOR = 'operator-token-for-payout-refund-00';
let trusted: TrustedMint;
let trustedMintUrl: string;
let renter: LeaseTestNode;
const operatorWallet = new FakeLightningBackend();

beforeAll(async () => {
  // 1 sat a proof: the node bears input fees, and a refund of nearly everything is handed over whole.
  trusted = await startTrustedMint({ prefix: 'payout-refund-mint', mint: { inputFeePpk: 1000 } });
  trustedMintUrl = trusted.mintUrl;
  renter = await startLeaseNode(
    { trustedMints: [trustedMintUrl], operatorToken: OPERATOR, offers: [BURST_OFFER] },
    undefined,
    { images: ['busybox', 'ghost'] },
  );
});
afterAll(async () => {
  await renter?.close();
  await trusted?.close();
});

describe('a payout beside refunds at a trusted mint with input fees', () => {
  it('leaves the refund of a failed start alone', async () => {
    const { wallet, proofs } = await fundedWallet(trustedMintUrl, 400);
    const failedPay = await tokenOf(wallet, trustedMintUrl, proofs, 300);
    const failed = await postJson(
      `${renter.url}/v1/leases`,
      { offer: 'burst', seconds: 3, image: 'ghost' },
      { 'x-cashu': failedPay.token },
    );
    expect(failed.status).toBe(503);
    const refund = String(failed.body.refund);
    expect(refund).toMatch(/^cashuB/);

    const second = await fundedWallet(trustedMintUrl, 400);
    const earnPay = await tokenOf(second.wallet, trustedMintUrl, second.proofs, 300);
    const earned = await postJson(
      `${renter.url}/v1/leases`,
      { offer: 'burst', seconds: 3, image: 'busybox' },
      { 'x-cashu': earnPay.token },
    );
    expect([earned.status, earned.body.error]).toEqual([201, undefined]);
    const start = await untilNoneRunning(renter.url, OPERATOR);
    const figures = start.by_mint.trusted[0]!;
    // The lease earned 300; the failed start's refund cost the node the input fee it bore.
    const unpaid = figures.unpaid;
    expect(unpaid).toBeGreaterThanOrEqual(290);
    const theirsBefore = await trusted.books();

    const invoice = (await operatorWallet.createInvoice(Amount.of(250), 'payout')).bolt11;
    const out = await postJson(
      `${renter.url}/v1/operator/payout`,
      { to: invoice },
      { authorization: `Bearer ${OPERATOR}` },
    );
    expect(out.status).toBe(200);
    expect(out.body).toMatchObject({ paid: 250, state: 'paid', source: trustedMintUrl });
    const fee = Number(out.body.fee);
    // The melt's input fee is the node's: counted in the payout's fee, out of its earnings.
    expect(fee).toBeGreaterThanOrEqual(1);

    // The renter redeems the refund only now: every proof of it is still there.
    const back = await wallet.receive(refund);
    expect(sumOf(back)).toBeGreaterThanOrEqual(Number(failed.body.refunded) - 4);

    const books = await ledgerOf(renter.url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
    expect(books.by_mint.trusted[0]).toMatchObject({ paid_out: 250 + fee, unpaid: unpaid - 250 - fee });
    const theirs = await trusted.books();
    // It paid the invoice once; what it took in input fees stays with it (outside circulation).
    expect(theirs.lightning_out).toBe(theirsBefore.lightning_out + 250);
    expect(theirs.outstanding).toBeLessThan(theirs.lightning_in - theirs.lightning_out);
  });
});
