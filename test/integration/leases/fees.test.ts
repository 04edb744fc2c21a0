import { getDecodedToken, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allSpent,
  allUnspent,
  fundedWallet,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  startLeaseNode,
  sumOf,
  tokenOf,
} from '../../helpers/lease-node.js';

/**
 * With input fees set by the operator (input_fee_ppk), a token must cover price + its input fee;
 * change is paid − price − fee, and a token short of that is refused untouched.
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

describe('input fees', () => {
  it('charges price + input fee, returns the rest as change, refuses a token short of the fee', async () => {
    const funded = await fundedWallet(t.mintUrl, 1000);
    let rest = funded.proofs;
    // 120 sat in many small proofs: the fee makes it too little.
    const short = await tokenOf(funded.wallet, t.mintUrl, rest, 120);
    rest = short.keep;
    const proofs = getDecodedToken(short.token, keysetIds).proofs;
    const fee = Math.ceil((PPK * proofs.length) / 1000);
    expect(fee).toBeGreaterThan(0);
    const refused = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': short.token });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: 'insufficient_amount', amount: 120 + fee, unit: 'sat' });
    expect(await allUnspent(funded.wallet, short.send)).toBe(true);

    const enough = await tokenOf(funded.wallet, t.mintUrl, rest, 150);
    const paidProofs = getDecodedToken(enough.token, keysetIds).proofs;
    const paidFee = Math.ceil((PPK * paidProofs.length) / 1000);
    const created = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': enough.token });
    expect(created.status).toBe(201);
    expect(created.body.paid).toBe(150);
    const change = getDecodedToken(String(created.body.change), keysetIds).proofs;
    expect(sumOf(change)).toBe(150 - 120 - paidFee);
    expect(await allSpent(funded.wallet, enough.send)).toBe(true);

    const books = await ledgerOf(t.url, OPERATOR);
    expect(books.received).toBe(120);
    expect(books.received).toBe(books.charged + books.refunded + books.held);
    const stop = await postJson(
      `${t.url}/v1/leases/${created.body.id}`,
      undefined,
      { authorization: `Bearer ${created.body.token}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
    const after = await ledgerOf(t.url, OPERATOR);
    expect(after.received).toBe(after.charged + after.refunded + after.held);
  });
});
