import { createHash } from 'node:crypto';
import { Wallet } from '@cashu/cashu-ts';
import { decodePaymentRequiredHeader } from '@x402/core/http';
import type { PaymentPayload, PaymentRequired } from '@x402/core/types';
import type { Hex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { X402Facilitator } from '../../../src/rails/x402/facilitator.js';
import { SETTLEMENT_GRACE_MS } from '../../../src/rails/x402/settlement-journal.js';
import { encodeHeader } from '../../../src/rails/x402/x402-requirements.js';
import { startTestChain, type TestChain, x402ConfigFor } from '../../helpers/evm-chain.js';
import {
  expectBalanced,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  startLeaseNode,
  sumOf,
} from '../../helpers/lease-node.js';
import { x402PaymentFor } from '../../helpers/x402-payer.js';

/**
 * The journal of x402 settlements sent and the sweep that resolves those whose payer never came
 * back, on a real local chain: a settlement the chain executed but the node never claimed (it
 * failed between the two, or the settlement was still pending) ends, after the payer's retry
 * window, as a refund owed to that payment, shown to the payer's retry; one that never executed
 * and can no longer is dropped with nothing booked.
 */

const OPERATOR = 'operator-token-for-tests-0123456789';
/** 1 sat = 1000 units of the 6-decimal token: the small offer's 120 sat for 2 h is 120000 units. */
const RATE = 1000n;
const PRICE = 120n * RATE;
const createBody = { offer: 'small', seconds: 7200, image: 'busybox' };

/** What the facilitator around the real one does after (or instead of) sending a settlement. */
let settleMode: 'answer' | 'fail-after-send' | 'fail-before-send' = 'answer';
/** Whether the facilitator around the real one finds the chain unreachable when asked about a nonce. */
let chainDown = false;
/** How far the node's clock runs ahead of this host's (ms): past the payer's retry window, or not. */
let aheadMs = 0;

let chain: TestChain;
let t: LeaseTestNode;
/** The node's x402 configuration and its facilitator key file. */
let x402: ReturnType<typeof x402ConfigFor> | undefined;
beforeAll(async () => {
  chain = await startTestChain();
  x402 = x402ConfigFor(chain, RATE, { confirmationTimeoutMs: 1000 });
  t = await startLeaseNode(
    {
      operatorToken: OPERATOR,
      x402: x402.x402,
    },
    undefined,
    {
      clock: () => new Date(Date.now() + aheadMs),
      // The real facilitator, made to fail where a node may: after the transaction went out
      // (a crash between settlement and claim), or before anything was sent.
      x402Facilitator: (real): X402Facilitator => ({
        verify: (payload, requirements) => real.verify(payload, requirements),
        async settle(payload, requirements) {
          if (settleMode === 'fail-before-send') throw new Error('the node failed before sending');
          const settled = await real.settle(payload, requirements);
          if (settleMode === 'fail-after-send') throw new Error('the node failed after sending');
          return settled;
        },
        async executionOf(authorization) {
          if (chainDown) throw new Error('fetch failed');
          return real.executionOf(authorization);
        },
      }),
    },
  );
});
afterAll(async () => {
  await t?.close();
  await chain?.close();
  x402?.dispose();
});

/** The official client's payment (x402 v2) for a lease, signed by `key`, and its payment key. */
async function paymentFor(key: Hex) {
  const res = await postJson(`${t.url}/v1/leases`, createBody);
  expect(res.status).toBe(402);
  const required = decodePaymentRequiredHeader(res.headers.get('payment-required') ?? '') as PaymentRequired;
  const { payload, headers } = await x402PaymentFor(key, encodeHeader(required));
  return { payload, headers, key: paymentKey(payload) };
}

/** The payment key the node gives an x402 payment (chain, asset, payer, nonce). */
function paymentKey(payload: PaymentPayload): string {
  const a = (payload.payload as { authorization: { from: string; nonce: string } }).authorization;
  return createHash('sha256')
    .update(`x402/${chain.network}/${chain.usdc}/${a.from}/${a.nonce}`.toLowerCase())
    .digest('hex');
}

function journalRow(key: string) {
  return t.node.db.selectFrom('x402_settlements').selectAll().where('key', '=', key).executeTakeFirst();
}

function claims(key: string) {
  return t.node.db.selectFrom('x402_payments').selectAll().where('key', '=', key).execute();
}

/** One sweep pass with the node's clock `ms` ahead (past the retry window, or not). */
async function sweepAhead(ms: number) {
  aheadMs = ms;
  try {
    return await t.node.sweepX402Settlements();
  } finally {
    aheadMs = 0;
  }
}

/** Past the payer's retry window (the node's: the larger of the default and twice its 1 s wait). */
const PAST_GRACE = SETTLEMENT_GRACE_MS + 60_000;

async function received(token: string): Promise<number> {
  const wallet = new Wallet(t.mintUrl, { unit: 'sat' });
  await wallet.loadMint();
  return sumOf(await wallet.receive(token));
}

/**
 * The payer's retries of a payment the sweep returned: `token_spent` with the whole payment as a
 * refund token of the node's mint, the same token every time, and a wallet takes it once.
 */
async function expectRefundOnRetry(headers: Record<string, string>) {
  const retry = await postJson(`${t.url}/v1/leases`, createBody, headers);
  expect(retry.status).toBe(400);
  expect(retry.body).toMatchObject({ error: 'token_spent', refunded: 120 });
  expect(retry.body.id).toBeUndefined();
  expect(retry.body.refund).toMatch(/^cashu/);
  const again = await postJson(`${t.url}/v1/leases`, createBody, headers);
  expect(again.body.refund).toBe(retry.body.refund);
  expect(await received(retry.body.refund as string)).toBe(120);
  return retry;
}

describe('x402 settlement journal and sweep', () => {
  it('returns a payment settled on the chain whose request failed before its claim and whose payer never came back: the retry gets the refund', async () => {
    const payer = await chain.payer(1_000_000n);
    const { payload, headers, key } = await paymentFor(payer.key);
    const before = await ledgerOf(t.url, OPERATOR);
    settleMode = 'fail-after-send';
    const first = await postJson(`${t.url}/v1/leases`, createBody, headers).finally(() => {
      settleMode = 'answer';
    });
    expect(first.status).toBe(503);
    expect(first.body.error).toBe('x402_unavailable');
    // The money is with the operator, nothing is claimed, but the settlement is journaled.
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - PRICE);
    expect(await claims(key)).toEqual([]);
    const row = await journalRow(key);
    expect(row).toMatchObject({ atomic: String(PRICE), amount: 120, payer: payer.address.toLowerCase() });
    // Nothing bearer in it: the authorization's signature is nowhere in the row.
    const signature = (payload.payload as { signature: string }).signature.slice(2).toLowerCase();
    expect(JSON.stringify(row).toLowerCase()).not.toContain(signature);

    // Within the payer's retry window the sweep leaves it to the payer.
    await sweepAhead(0);
    expect(await claims(key)).toEqual([]);
    expect(await journalRow(key)).toBeDefined();

    // The payer never came back: the sweep returns it, once, and the books show it handed back.
    await sweepAhead(PAST_GRACE);
    await sweepAhead(PAST_GRACE);
    expect(await claims(key)).toEqual([expect.objectContaining({ outcome: 'returned', amount: 120 })]);
    expect(await journalRow(key)).toBeUndefined();
    const after = await ledgerOf(t.url, OPERATOR);
    expect(after.bounced).toBe(before.bounced + 120);
    expect(after.mint.x402_in).toBe(before.mint.x402_in + 120);
    expect(after.received).toBe(before.received);
    expect(expectBalanced(after)).toEqual([]);

    // The payer's retry of the same request, whenever it comes: the refund, never a lease.
    await expectRefundOnRetry(headers);
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - PRICE);
    expect((await ledgerOf(t.url, OPERATOR)).leases).toEqual(before.leases);
  });

  it('returns a payment whose settlement was still pending when the node answered 503 and whose payer never retried', async () => {
    const payer = await chain.payer(1_000_000n);
    const { headers, key } = await paymentFor(payer.key);
    // The transaction waits in the mempool past the facilitator's wait for its receipt.
    await chain.automine(false);
    let first: Awaited<ReturnType<typeof postJson>>;
    try {
      first = await postJson(`${t.url}/v1/leases`, createBody, headers);
      expect(await chain.balanceOf(payer.address)).toBe(1_000_000n);
    } finally {
      await chain.mine();
      await chain.automine(true);
    }
    expect(first.status).toBe(503);
    expect(first.body.error).toBe('x402_unavailable');
    expect(first.body.message).toMatch(/not confirmed yet/);
    // Mined after the answer: the operator has the money, the node only its journal row.
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - PRICE);
    expect(await claims(key)).toEqual([]);
    expect(await journalRow(key)).toBeDefined();

    await sweepAhead(PAST_GRACE);
    expect(await claims(key)).toEqual([expect.objectContaining({ outcome: 'returned', amount: 120 })]);
    expect(await journalRow(key)).toBeUndefined();
    await expectRefundOnRetry(headers);
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR))).toEqual([]);
  });

  it('drops a journaled settlement that never executed once its authorization has expired, booking nothing', async () => {
    const payer = await chain.payer(1_000_000n);
    const { payload, headers, key } = await paymentFor(payer.key);
    const before = await ledgerOf(t.url, OPERATOR);
    settleMode = 'fail-before-send';
    const first = await postJson(`${t.url}/v1/leases`, createBody, headers).finally(() => {
      settleMode = 'answer';
    });
    expect(first.status).toBe(503);
    expect(await journalRow(key)).toBeDefined();
    const nonce = (payload.payload as { authorization: { nonce: Hex } }).authorization.nonce;

    // Past the retry window but still valid (300 s): it might still be executed, so it stays.
    const left = await sweepAhead(PAST_GRACE);
    expect(left?.left).toBeGreaterThanOrEqual(1);
    expect(await journalRow(key)).toBeDefined();
    // Long expired and never executed: it can never move money; gone, and nothing booked.
    await sweepAhead(3_600_000);
    expect(await journalRow(key)).toBeUndefined();
    expect(await claims(key)).toEqual([]);
    expect(await chain.authorizationState(payer.address, nonce)).toBe(false);
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n);
    const after = await ledgerOf(t.url, OPERATOR);
    expect(after.mint).toEqual(before.mint);
    expect(after.bounced).toBe(before.bounced);
  });

  it('leaves no journal row behind a normal paid request, nor behind a payment refused before anything was sent', async () => {
    const payer = await chain.payer(1_000_000n);
    const { headers, key } = await paymentFor(payer.key);
    const res = await postJson(`${t.url}/v1/leases`, createBody, headers);
    expect(res.status).toBe(201);
    expect(await claims(key)).toEqual([expect.objectContaining({ outcome: 'claimed' })]);
    expect(await journalRow(key)).toBeUndefined();

    const broke = await chain.payer(0n);
    const refused = await paymentFor(broke.key);
    const no = await postJson(`${t.url}/v1/leases`, createBody, refused.headers);
    expect(no.status).toBe(402);
    expect(no.body.error).toBe('x402_settlement_failed');
    expect(await journalRow(refused.key)).toBeUndefined();

    // Nothing for a sweep to do with either: the lease stays, nothing is handed back.
    await sweepAhead(PAST_GRACE);
    expect(await claims(key)).toEqual([expect.objectContaining({ outcome: 'claimed' })]);
    const replay = await postJson(`${t.url}/v1/leases`, createBody, headers);
    expect(replay.status).toBe(200);
    expect(replay.body.id).toBe(res.body.id);
  });

  it('books one outcome when two sweeps race the payer retry of the same payment', async () => {
    // The sweeps start first, or the retry does and they follow at once, or a moment later.
    for (const sweepsAfterMs of [-1, 60, 150, 400]) {
      const payer = await chain.payer(1_000_000n);
      const { headers, key } = await paymentFor(payer.key);
      settleMode = 'fail-after-send';
      const first = await postJson(`${t.url}/v1/leases`, createBody, headers).finally(() => {
        settleMode = 'answer';
      });
      expect(first.status).toBe(503);
      expect(await journalRow(key)).toBeDefined();
      const before = await ledgerOf(t.url, OPERATOR);
      // Two replicas sweeping the same store, past the window, while the payer retries at last.
      aheadMs = PAST_GRACE;
      const sweep = async () => {
        if (sweepsAfterMs >= 0) await new Promise((resolve) => setTimeout(resolve, sweepsAfterMs));
        return t.node.sweepX402Settlements();
      };
      const [a, retry, b] = await Promise.all([
        sweep(),
        postJson(`${t.url}/v1/leases`, createBody, headers),
        sweep(),
      ]).finally(() => {
        aheadMs = 0;
      });
      const claimed = await claims(key);
      expect(claimed).toHaveLength(1);
      // At most one of the sweeps booked a return (the node's own timer may have run one too).
      const booked = (a?.returned ?? 0) + (b?.returned ?? 0);
      expect(booked).toBeLessThanOrEqual(1);
      expect(await journalRow(key)).toBeUndefined();
      const after = await ledgerOf(t.url, OPERATOR);
      if (claimed[0]?.outcome === 'claimed') {
        // The retry won: its lease, and nothing handed back.
        expect(retry.status).toBe(201);
        expect(retry.body).toMatchObject({ state: 'running', paid: 120 });
        expect(after.bounced).toBe(before.bounced);
        expect(booked).toBe(0);
      } else {
        // A sweep won: the retry (and every later one) sees the refund, and no lease was made.
        expect(claimed[0]?.outcome).toBe('returned');
        expect(after.bounced).toBe(before.bounced + 120);
        expect(after.leases).toEqual(before.leases);
        expect(retry.status).toBe(400);
        expect(retry.body.error).toBe('token_spent');
        const later = await expectRefundOnRetry(headers);
        expect(later.body.refund).toBe(retry.body.refund);
      }
      expect(after.mint.x402_in).toBe(before.mint.x402_in + 120);
      expect(expectBalanced(after)).toEqual([]);
      expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - PRICE);
    }
  });

  it('leaves journaled settlements for a later pass when the chain does not answer, and resolves them then', async () => {
    const payer = await chain.payer(1_000_000n);
    const { headers, key } = await paymentFor(payer.key);
    settleMode = 'fail-after-send';
    await postJson(`${t.url}/v1/leases`, createBody, headers).finally(() => {
      settleMode = 'answer';
    });
    chainDown = true;
    const down = await sweepAhead(PAST_GRACE).finally(() => {
      chainDown = false;
    });
    expect(down).toMatchObject({ unreachable: true });
    expect(await journalRow(key)).toBeDefined();
    expect(await claims(key)).toEqual([]);
    // The node still serves.
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    // A checked row waits another window before it is asked about again.
    await sweepAhead(2 * PAST_GRACE);
    expect(await claims(key)).toEqual([expect.objectContaining({ outcome: 'returned' })]);
    await expectRefundOnRetry(headers);
  });
});
