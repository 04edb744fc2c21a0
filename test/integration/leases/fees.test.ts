import { decodePaymentRequest, getDecodedToken, getEncodedToken, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allSpent,
  allUnspent,
  expectBalanced,
  fundedWallet,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  startLeaseNode,
  sumOf,
  tokenOf,
} from '../../helpers/lease-node.js';

/**
 * With input fees set by the operator (input_fee_ppk), what the 402 asks and what the node takes
 * agree (NUT-24: a token worth at least the 402's amount pays; API.md: that amount is the price).
 * A token worth exactly the amount pays, whatever its input fee: the fee comes out of what a token
 * holds above the price, and the node bears the rest (the lease then holds the price less that
 * fee). Change is paid − price − the fee so covered; a token worth less than the amount is refused
 * untouched.
 */
const OPERATOR = 'operator-token-for-fee-tests-012345';
const PPK = 400;
let t: LeaseTestNode;
let wallet: Wallet;
let keysetIds: string[];

beforeAll(async () => {
  t = await startLeaseNode({ operatorToken: OPERATOR, mint: { inputFeePpk: PPK } });
  wallet = new Wallet(t.mintUrl, { unit: 'sat' });
  await wallet.loadMint();
  keysetIds = wallet.keyChain.getKeysets().map((k) => k.id);
});
afterAll(async () => {
  await t?.close();
});

const body = { offer: 'small', seconds: 7200, image: 'busybox' }; // 120 sat
const feeOf = (token: string) => Math.ceil((PPK * getDecodedToken(token, keysetIds).proofs.length) / 1000);

/** What a 402 asks, read the way a NUT-24 client does: the creqA header, and the JSON body. */
function asked(res: { status: number; headers: Headers; body: Record<string, unknown> }): number {
  expect(res.status).toBe(402);
  const request = decodePaymentRequest(res.headers.get('x-cashu') ?? '');
  const a = Number(request.amount?.toBigInt());
  expect(res.body.amount).toBe(a);
  expect(request.unit).toBe('sat');
  return a;
}

describe('input fees', () => {
  it('a wallet paying exactly what the 402 asks gets its lease, and its extension', async () => {
    const challenge = await postJson(`${t.url}/v1/leases`, body);
    const amount = asked(challenge);
    expect(amount).toBe(120);
    const funded = await fundedWallet(t.mintUrl, 400);
    const exact = await tokenOf(funded.wallet, t.mintUrl, funded.proofs, amount);
    expect(sumOf(exact.send)).toBe(amount);
    expect(feeOf(exact.token)).toBeGreaterThan(0);
    const created = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': exact.token });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ paid: 120, change: null });
    expect(await allSpent(funded.wallet, exact.send)).toBe(true);

    const extendUrl = `${t.url}/v1/leases/${created.body.id}/extend`;
    const extAmount = asked(await postJson(extendUrl, { seconds: 3600 }));
    expect(extAmount).toBe(60);
    const extToken = await tokenOf(funded.wallet, t.mintUrl, exact.keep, extAmount);
    expect(feeOf(extToken.token)).toBeGreaterThan(0);
    const extended = await postJson(extendUrl, { seconds: 3600 }, { 'x-cashu': extToken.token });
    expect(extended.status).toBe(200);
    expect(extended.body.change).toBeNull();
    expect(await allSpent(funded.wallet, extToken.send)).toBe(true);

    const stop = await postJson(
      `${t.url}/v1/leases/${created.body.id}`,
      undefined,
      { authorization: `Bearer ${created.body.token}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
    // What the node bore of the fees is not income: the lease kept the price less that fee.
    const books = await ledgerOf(t.url, OPERATOR);
    expect(books.received).toBe(180 - feeOf(exact.token) - feeOf(extToken.token));
    expect(books.received).toBe(books.charged + books.refunded + books.held);
  });

  it('an overpayment pays the fee out of the change; less than the 402 asks is refused untouched', async () => {
    const funded = await fundedWallet(t.mintUrl, 1000);
    const short = await tokenOf(funded.wallet, t.mintUrl, funded.proofs, 119);
    const refused = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': short.token });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: 'insufficient_amount', amount: 120, unit: 'sat' });
    expect(await allUnspent(funded.wallet, short.send)).toBe(true);

    const enough = await tokenOf(funded.wallet, t.mintUrl, short.keep, 150);
    const paidFee = feeOf(enough.token);
    const created = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': enough.token });
    expect(created.status).toBe(201);
    expect(created.body.paid).toBe(150);
    const change = getDecodedToken(String(created.body.change), keysetIds).proofs;
    expect(sumOf(change)).toBe(150 - 120 - paidFee);
    expect(await allSpent(funded.wallet, enough.send)).toBe(true);
    // An overpayment smaller than the fee: no change, the node bears the rest of the fee.
    const slightly = await tokenOf(funded.wallet, t.mintUrl, enough.keep, 121);
    expect(feeOf(slightly.token)).toBeGreaterThan(1);
    const small = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': slightly.token });
    expect(small.status).toBe(201);
    expect(small.body).toMatchObject({ paid: 121, change: null });

    for (const lease of [created.body, small.body]) {
      const stop = await postJson(
        `${t.url}/v1/leases/${lease.id}`,
        undefined,
        { authorization: `Bearer ${lease.token}` },
        'DELETE',
      );
      expect(stop.status).toBe(200);
    }
    const after = await ledgerOf(t.url, OPERATOR);
    expect(after.received).toBe(after.charged + after.refunded + after.held);
  });

  it('a token of exactly the amount in 19 small proofs (8 sat of fees) still pays', async () => {
    // Many small proofs: a large fee on the exact amount, all of it borne by the node.
    const funded = await fundedWallet(t.mintUrl, 300);
    const ones = await funded.wallet.send(
      120,
      funded.proofs,
      {},
      { send: { type: 'random', denominations: [...Array<number>(16).fill(1), 8, 32, 64] } },
    );
    expect(ones.send).toHaveLength(19);
    const token = getEncodedToken({ mint: t.mintUrl, unit: 'sat', proofs: ones.send });
    expect(feeOf(token)).toBe(8);
    const created = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': token });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ paid: 120, change: null });
    const stop = await postJson(
      `${t.url}/v1/leases/${created.body.id}`,
      undefined,
      { authorization: `Bearer ${created.body.token}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR)).filter((p) => p.startsWith('received'))).toEqual(
      [],
    );
  });
});
