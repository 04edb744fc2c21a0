import { CheckStateEnum, getDecodedToken, getEncodedToken, getTokenMetadata, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  sumOf,
  tokenOf,
} from '../../helpers/lease-node.js';

/**
 * Trusted-mint money paths: a mint that charges NUT-02 input fees, and a start that fails after
 * payment. Everything is real: both nodes, their mints, crun sandboxes, HTTP, a cashu-ts wallet. A
 * start fails for real by asking for `ghost`, an image the node offers but whose files are missing.
 */
const OPERATOR = 'operator-token-for-fee-tests-0123';
const createBody = { offer: 'small', seconds: 7200, image: 'busybox' };
let feeMint: LeaseTestNode;
let renter: LeaseTestNode;

beforeAll(async () => {
  feeMint = await startLeaseNode({ mint: { inputFeePpk: 100 } });
  renter = await startLeaseNode({ trustedMints: [feeMint.mintUrl], operatorToken: OPERATOR }, undefined, {
    images: ['busybox', 'ghost'],
  });
});
afterAll(async () => {
  await renter?.close();
  await feeMint?.close();
});

function value(token: string, wallet: Wallet): number {
  return sumOf(
    getDecodedToken(
      token,
      wallet.keyChain.getKeysets().map((k) => k.id),
    ).proofs,
  );
}

describe('a trusted mint that charges input fees', () => {
  it('takes the NUT-02 fee out of the change, and refunds exactly what the lease owes', async () => {
    const { wallet, proofs } = await fundedWallet(feeMint.mintUrl, 300);
    const { token, send } = await tokenOf(wallet, feeMint.mintUrl, proofs, 130);
    const fee = Math.ceil((send.length * 100) / 1000);
    const res = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
    expect(res.status).toBe(201);
    const change = res.body.change as string;
    expect(getTokenMetadata(change).mint).toBe(feeMint.mintUrl);
    expect(value(change, wallet)).toBe(130 - 120 - fee);
    expect((await wallet.checkProofsStates(send)).map((s) => s.state)).toEqual(
      send.map(() => CheckStateEnum.SPENT),
    );
    await wallet.receive(change);

    const stop = await postJson(
      `${renter.url}/v1/leases/${res.body.id}`,
      undefined,
      { authorization: `Bearer ${res.body.token}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
    const refund = stop.body.refund as string;
    expect(value(refund, wallet)).toBe(stop.body.refunded);
    await wallet.receive(refund);
  });

  it('takes a token worth exactly what the 402 asks (NUT-24), the node bearing the input fee', async () => {
    const challenge = await postJson(`${renter.url}/v1/leases`, createBody);
    expect(challenge.status).toBe(402);
    expect(challenge.body.amount).toBe(120);
    const { wallet, proofs } = await fundedWallet(feeMint.mintUrl, 300);
    const { token, send } = await tokenOf(wallet, feeMint.mintUrl, proofs, 120);
    expect(Math.ceil((send.length * 100) / 1000)).toBeGreaterThan(0);
    const res = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ paid: 120, change: null });
    expect((await wallet.checkProofsStates(send)).map((s) => s.state)).toEqual(
      send.map(() => CheckStateEnum.SPENT),
    );
    // Its replay is the same answer: the swap's outputs derive from the same split.
    const replay = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(res.body);
    // Stopped at once: the refund is what the lease holds there, and the token is worth it.
    const stop = await postJson(
      `${renter.url}/v1/leases/${res.body.id}`,
      undefined,
      { authorization: `Bearer ${res.body.token}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
    expect(stop.body.refunded).toBeLessThanOrEqual(120 - Math.ceil((send.length * 100) / 1000));
    expect(value(stop.body.refund as string, wallet)).toBe(stop.body.refunded);
    await wallet.receive(stop.body.refund as string);
  });

  it('refuses a token of many tiny proofs worth the price whose fee would eat what it buys; the token stays unspent', async () => {
    // 120 proofs of 1 sat at 100 ppk: a 12 sat fee. The node bears at most the fee of the price in
    // its fewest proofs (120 = 64 + 32 + 16 + 8: 4 proofs, 1 sat); the rest is the payer's to add.
    const wallet = new Wallet(feeMint.mintUrl, { unit: 'sat' });
    await wallet.loadMint();
    const quote = await wallet.createMintQuoteBolt11(120);
    const ones = await wallet.mintProofsBolt11(120, quote.quote, undefined, {
      type: 'random',
      denominations: Array.from({ length: 120 }, () => 1),
    });
    expect(ones).toHaveLength(120);
    const token = getEncodedToken({ mint: feeMint.mintUrl, proofs: ones, unit: 'sat' });
    const res = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('insufficient_amount');
    expect((await wallet.checkProofsStates(ones)).map((s) => s.state)).toEqual(
      ones.map(() => CheckStateEnum.UNSPENT),
    );
  });

  it('a failed start paid with exactly the price gives back a token worth what it says', async () => {
    const { wallet, proofs } = await fundedWallet(feeMint.mintUrl, 300);
    const { token, send } = await tokenOf(wallet, feeMint.mintUrl, proofs, 120);
    const fee = Math.ceil((send.length * 100) / 1000);
    const res = await postJson(
      `${renter.url}/v1/leases`,
      { ...createBody, image: 'ghost' },
      { 'x-cashu': token },
    );
    expect(res.status).toBe(503);
    expect(res.body.refunded).toBe(120 - fee);
    expect(value(res.body.refund as string, wallet)).toBe(120 - fee);
    await wallet.receive(res.body.refund as string);
  });

  it('gives everything back, less only the mint fee, when the sandbox fails to start', async () => {
    const { wallet, proofs } = await fundedWallet(feeMint.mintUrl, 300);
    const { token, send } = await tokenOf(wallet, feeMint.mintUrl, proofs, 130);
    const fee = Math.ceil((send.length * 100) / 1000);
    const ghostBody = { ...createBody, image: 'ghost' };
    {
      const res = await postJson(`${renter.url}/v1/leases`, ghostBody, { 'x-cashu': token });
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('start_failed');
      expect(res.body.refunded).toBe(130 - fee);
      const refund = res.body.refund as string;
      expect(getTokenMetadata(refund).mint).toBe(feeMint.mintUrl);
      expect(value(refund, wallet)).toBe(130 - fee);
      // The replay shows the same refund.
      const replay = await postJson(`${renter.url}/v1/leases`, ghostBody, { 'x-cashu': token });
      expect(replay.body).toEqual(res.body);
      await wallet.receive(refund);
    }
  });

  it('keeps the operator ledger balanced', async () => {
    const books = (await (
      await fetch(`${renter.url}/v1/operator/ledger`, { headers: { authorization: `Bearer ${OPERATOR}` } })
    ).json()) as { received: number; charged: number; refunded: number; held: number };
    expect(books.received).toBeGreaterThan(0);
    expect(books.received).toBe(books.charged + books.refunded + books.held);
  });
});
