import { Wallet } from '@cashu/cashu-ts';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { x402Client, x402HTTPClient } from '@x402/core/client';
import { decodePaymentRequiredHeader, decodePaymentResponseHeader } from '@x402/core/http';
import type { PaymentPayload, PaymentRequired } from '@x402/core/types';
import { ExactEvmScheme } from '@x402/evm/exact/client';
import { ExactEvmSchemeV1 } from '@x402/evm/exact/v1/client';
import { wrapFetchWithPaymentFromConfig } from '@x402/fetch';
import fc from 'fast-check';
import { createWalletClient, defineChain, type Hex, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { encodeHeader } from '../../../src/rails/x402/x402-requirements.js';
import { startTestChain, TEST_CHAIN_ID, type TestChain, x402ConfigFor } from '../../helpers/evm-chain.js';
import {
  expectBalanced,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  startLeaseNode,
  sumOf,
} from '../../helpers/lease-node.js';
import { bodyOf, callTool } from '../../helpers/mcp.js';
import { encodePayment, x402PaymentFor } from '../../helpers/x402-payer.js';

const OPERATOR = 'operator-token-for-tests-0123456789';
/** 1 sat = 1000 units of the 6-decimal token: the small offer's 120 sat for 2 h is 0.12 of it. */
const RATE = 1000n;
const createBody = { offer: 'small', seconds: 7200, image: 'busybox' };

let chain: TestChain;
let t: LeaseTestNode;
/** The node's x402 configuration and its facilitator key file. */
let x402: ReturnType<typeof x402ConfigFor> | undefined;
beforeAll(async () => {
  chain = await startTestChain();
  x402 = x402ConfigFor(chain, RATE);
  t = await startLeaseNode({
    operatorToken: OPERATOR,
    x402: x402.x402,
  });
});
afterAll(async () => {
  await t?.close();
  await chain?.close();
  x402?.dispose();
});

/** The stock x402 client's fetch (`@x402/fetch`), paying from `key`'s account. */
function x402Fetch(key: Hex) {
  return wrapFetchWithPaymentFromConfig(fetch, {
    schemes: [{ network: 'eip155:*', client: new ExactEvmScheme(privateKeyToAccount(key)) }],
  });
}

function post(fetcher: typeof fetch, url: string, body: unknown) {
  return fetcher(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** The 402 of `url` and its x402 v2 PAYMENT-REQUIRED, decoded. */
async function challengeFor(url: string, body: unknown) {
  const res = await postJson(url, body);
  expect(res.status).toBe(402);
  const header = res.headers.get('payment-required') ?? '';
  return { res, header, required: decodePaymentRequiredHeader(header) as PaymentRequired };
}

/** The official client's payment headers for the 402 of `url`, signed by `key`. */
async function paymentFor(key: Hex, url: string, body: unknown, edit?: (r: PaymentRequired) => void) {
  const { required } = await challengeFor(url, body);
  edit?.(required);
  return x402PaymentFor(key, encodeHeader(required));
}

describe('x402 (EVM stablecoins) as a third payment rail', () => {
  it('offers x402 beside Cashu and L402: PAYMENT-REQUIRED (v2) and the v1 accepts list, the price at the operator rate', async () => {
    const { res, required } = await challengeFor(`${t.url}/v1/leases`, createBody);
    expect(res.headers.get('x-cashu')).toMatch(/^creqA/);
    expect(res.headers.get('www-authenticate')).toMatch(/^L402 /);
    expect(required).toMatchObject({
      x402Version: 2,
      resource: { url: `${t.url}/v1/leases` },
      accepts: [
        {
          scheme: 'exact',
          network: `eip155:${TEST_CHAIN_ID}`,
          asset: chain.usdc,
          amount: String(120n * RATE),
          payTo: chain.payTo,
          extra: { name: 'USDC', version: '2' },
        },
      ],
    });
    // The body keeps its own fields and adds x402 v1's (API.md: maxAmountRequired).
    expect(res.body).toMatchObject({ error: 'payment_required', amount: 120, unit: 'sat', x402Version: 1 });
    expect(res.body.accepts).toEqual([
      expect.objectContaining({
        scheme: 'exact',
        network: 'base-sepolia',
        maxAmountRequired: String(120n * RATE),
        payTo: chain.payTo,
        asset: chain.usdc,
        resource: `${t.url}/v1/leases`,
      }),
    ]);
    const offers = (await (await fetch(`${t.url}/v1/offers`)).json()) as { payment: Record<string, unknown> };
    expect(offers.payment.x402).toEqual({
      scheme: 'exact',
      network: chain.network,
      asset: chain.usdc,
      asset_name: 'USDC',
      asset_version: '2',
      pay_to: chain.payTo,
      rate: { atomic_units: String(RATE), sats: 1 },
      max_timeout_seconds: 300,
    });
  });

  it('rents, extends and stops a lease paid with the stock @x402/fetch client; the refund is ecash of the own mint', async () => {
    const payer = await chain.payer(1_000_000n);
    const before = await chain.balanceOf(chain.payTo);
    const pay = x402Fetch(payer.key);
    const created = await post(pay, `${t.url}/v1/leases`, createBody);
    expect(created.status).toBe(201);
    const lease = (await created.json()) as Record<string, unknown>;
    expect(lease).toMatchObject({ state: 'running', paid: 120, unit: 'sat', change: null });
    // The settlement, as x402 has it, in the answer's header.
    const settlement = decodePaymentResponseHeader(created.headers.get('payment-response') ?? '');
    expect(settlement).toMatchObject({ success: true, network: chain.network, payer: payer.address });
    expect(settlement.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(created.headers.get('x-payment-response')).toBe(created.headers.get('payment-response'));
    expect(await chain.balanceOf(chain.payTo)).toBe(before + 120n * RATE);
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - 120n * RATE);

    const ran = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      { command: ['sh', '-c', 'echo paid in stablecoins'] },
      { authorization: `Bearer ${lease.token}` },
    );
    expect(ran.body).toMatchObject({ exit_code: 0, stdout: 'paid in stablecoins\n' });

    const extended = await post(pay, `${t.url}/v1/leases/${lease.id}/extend`, { seconds: 3600 });
    expect(extended.status).toBe(200);
    const after = (await extended.json()) as Record<string, unknown>;
    expect(after).toMatchObject({ id: lease.id, paid: 180 });
    expect(Date.parse(String(after.expires_at)) - Date.parse(String(lease.expires_at))).toBe(3600_000);
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - 180n * RATE);

    const stopped = await postJson(
      `${t.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    );
    expect(stopped.status).toBe(200);
    const refunded = stopped.body.refunded as number;
    expect(refunded).toBeGreaterThan(170);
    const wallet = new Wallet(t.mintUrl, { unit: 'sat' });
    await wallet.loadMint();
    expect(sumOf(await wallet.receive(stopped.body.refund as string))).toBe(refunded);
    const ledger = await ledgerOf(t.url, OPERATOR);
    expect(ledger.mint.x402_in).toBeGreaterThanOrEqual(180);
    expect(expectBalanced(ledger)).toEqual([]);
  });

  it('never pays out over Lightning what x402 brought in: that money is already at payTo', async () => {
    const payer = await chain.payer(1_000_000n);
    const res = await post(x402Fetch(payer.key), `${t.url}/v1/leases`, createBody);
    expect(res.status).toBe(201);
    const lease = (await res.json()) as { id: string; token: string };
    const stopped = await postJson(
      `${t.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    );
    expect(stopped.status).toBe(200);
    const before = await ledgerOf(t.url, OPERATOR);
    // The ledger books the ended lease's takings at the own mint, and says they are on chain
    // already: nothing of them is payable over Lightning.
    expect(before.by_mint.own.unpaid).toBeGreaterThan(0);
    expect(before.by_mint.own.on_chain).toBeGreaterThanOrEqual(before.by_mint.own.unpaid);
    expect(before.by_mint.own.payable).toBe(0);
    // ...but the own mint's Lightning is not asked to pay them out.
    const to = (await new FakeLightningBackend().createInvoice(Amount.of(1), 'payout')).bolt11;
    const out = await postJson(
      `${t.url}/v1/operator/payout`,
      { to, from: 'own' },
      { authorization: `Bearer ${OPERATOR}` },
    );
    expect([out.status, out.body.error]).toEqual([409, 'payout_too_large']);
    const after = await ledgerOf(t.url, OPERATOR);
    expect([after.paid_out, after.payout_pending, after.mint.lightning_out]).toEqual([
      before.paid_out,
      before.payout_pending,
      before.mint.lightning_out,
    ]);
  });

  it('takes an x402 v1 payment in X-PAYMENT, made by the official v1 client from the 402 body', async () => {
    const payer = await chain.payer(1_000_000n);
    const { res } = await challengeFor(`${t.url}/v1/leases`, createBody);
    const client = new x402Client().registerV1(
      'base-sepolia',
      new ExactEvmSchemeV1(privateKeyToAccount(payer.key)),
    );
    const payload = await client.createPaymentPayload(res.body as unknown as PaymentRequired);
    const headers = new x402HTTPClient(client).encodePaymentSignatureHeader(payload);
    expect(Object.keys(headers)).toEqual(['X-PAYMENT']);
    const created = await postJson(`${t.url}/v1/leases`, createBody, headers);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ state: 'running', paid: 120 });
    const settlement = decodePaymentResponseHeader(created.headers.get('x-payment-response') ?? '');
    expect(settlement).toMatchObject({ success: true, network: 'base-sepolia', payer: payer.address });
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - 120n * RATE);
  });

  it('rents through the MCP rent tool with an x402 payment an agent signs from the offers tool alone', async () => {
    const payer = await chain.payer(1_000_000n);
    const client = new Client({ name: 'x402-agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`)));
    try {
      const offers = bodyOf(await callTool(client, 'offers'));
      const x402 = (offers.payment as Record<string, Record<string, unknown>>).x402;
      const quote = bodyOf(await callTool(client, 'quote', { offer: 'small', seconds: 7200 }));
      if (!x402) throw new Error('the offers tool lists no x402');
      const rate = x402.rate as { atomic_units: string; sats: number };
      const sats = BigInt(rate.sats);
      const amount = (BigInt(quote.amount as number) * BigInt(rate.atomic_units) + sats - 1n) / sats;
      const required: PaymentRequired = {
        x402Version: 2,
        resource: { url: `${t.url}/v1/leases` },
        accepts: [
          {
            scheme: 'exact',
            network: x402.network as PaymentRequired['accepts'][number]['network'],
            asset: String(x402.asset),
            amount: amount.toString(),
            payTo: String(x402.pay_to),
            maxTimeoutSeconds: Number(x402.max_timeout_seconds),
            extra: { name: x402.asset_name, version: x402.asset_version },
          },
        ],
      };
      const { headers } = await x402PaymentFor(payer.key, encodeHeader(required));
      const payment = headers['payment-signature'];
      const rented = await callTool(client, 'rent', { payment, ...createBody });
      expect(rented.isError).toBeFalsy();
      const lease = bodyOf(rented);
      expect(lease).toMatchObject({ state: 'running', paid: 120 });
      // The same payment again is the same lease.
      const again = bodyOf(await callTool(client, 'rent', { payment, ...createBody }));
      expect(again.id).toBe(lease.id);
      expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - 120n * RATE);
    } finally {
      await client.close();
    }
  });

  it('answers a replay with the same lease, also while the first is in flight, and charges once', async () => {
    const payer = await chain.payer(1_000_000n);
    const { headers } = await paymentFor(payer.key, `${t.url}/v1/leases`, createBody);
    const [a, b] = await Promise.all([
      postJson(`${t.url}/v1/leases`, createBody, headers),
      postJson(`${t.url}/v1/leases`, createBody, headers),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    expect(a.body.id).toBe(b.body.id);
    expect(a.body.token).toBe(b.body.token);
    const again = await postJson(`${t.url}/v1/leases`, createBody, headers);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(a.body.id);
    // The replay shows the same settlement.
    expect(again.headers.get('payment-response')).toBe(a.headers.get('payment-response'));
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - 120n * RATE);

    // Another body with the same payment is no replay: refused, nothing taken.
    const other = await postJson(`${t.url}/v1/leases`, { ...createBody, seconds: 3600 }, headers);
    expect(other.status).toBe(409);
    expect(other.body.error).toBe('idempotency_conflict');
    // Nor does the authorization that bought the lease buy an extension of it.
    const extension = await postJson(`${t.url}/v1/leases/${a.body.id}/extend`, { seconds: 7200 }, headers);
    expect(extension.status).toBe(409);
    expect(extension.body.error).toBe('idempotency_conflict');
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - 120n * RATE);
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR))).toEqual([]);
  });

  it('takes nothing for a bad signature, a changed value, another payee, asset or network, too little, or an expired authorization', async () => {
    const payer = await chain.payer(1_000_000n);
    const url = `${t.url}/v1/leases`;
    const ledger = await ledgerOf(t.url, OPERATOR);
    const refused = async (headers: Record<string, string>, status: number, code: string) => {
      const res = await postJson(url, createBody, headers);
      expect({ status: res.status, code: res.body.error }).toEqual({ status, code });
      expect(res.body.id).toBeUndefined();
    };
    const tampered = async (edit: (p: Eip3009Payment) => void) => {
      const { payload } = await paymentFor(payer.key, url, createBody);
      const copy = structuredClone(payload) as Eip3009Payment;
      edit(copy);
      return { 'payment-signature': encodePayment(copy) };
    };

    // A signature that is not the payer's.
    await refused(
      await tampered((p) => {
        const s = p.payload.signature as string;
        p.payload.signature = `${s.slice(0, 10)}${s[10] === 'a' ? 'b' : 'a'}${s.slice(11)}`;
      }),
      400,
      'x402_invalid',
    );
    // A value the payer did not sign.
    await refused(
      await tampered((p) => {
        p.payload.authorization.value = String(1_000n * RATE);
      }),
      400,
      'x402_invalid',
    );
    // Signed for another payee, asset or network than the operator's.
    const other = privateKeyToAccount(
      '0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba',
    ).address;
    for (const edit of [
      (r: PaymentRequired) => Object.assign(r.accepts[0] ?? {}, { payTo: other }),
      (r: PaymentRequired) => Object.assign(r.accepts[0] ?? {}, { asset: other }),
      (r: PaymentRequired) => Object.assign(r.accepts[0] ?? {}, { network: 'eip155:1' }),
    ]) {
      const { headers } = await paymentFor(payer.key, url, createBody, edit);
      await refused(headers, 400, 'x402_invalid');
    }
    // Signed for a cheaper request (60 s: 1 sat): too little for this one, and not spent.
    const cheap = await paymentFor(payer.key, url, { ...createBody, seconds: 60 });
    await refused(cheap.headers, 400, 'insufficient_amount');
    const cheapNonce = (cheap.payload.payload as { authorization: { nonce: Hex } }).authorization.nonce;
    expect(await chain.authorizationState(payer.address, cheapNonce)).toBe(false);
    // An authorization whose time is up (valid for 0 s).
    const expired = await paymentFor(payer.key, url, createBody, (r) =>
      Object.assign(r.accepts[0] ?? {}, { maxTimeoutSeconds: 0 }),
    );
    await refused(expired.headers, 400, 'x402_expired');
    // Not x402 at all.
    for (const junk of ['!!!', 'e30=', encodePayment({ x402Version: 2 }), 'A'.repeat(10_000)])
      await refused({ 'payment-signature': junk }, 400, 'x402_invalid');
    await refused({ 'x-payment': encodePayment({ x402Version: 3 }) }, 400, 'x402_invalid');

    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n);
    const after = await ledgerOf(t.url, OPERATOR);
    expect(after.received).toBe(ledger.received);
    expect(after.mint.x402_in).toBe(ledger.mint.x402_in);
  });

  it('answers any hostile x402 header with a 4xx and its error body, granting nothing', async () => {
    const before = await ledgerOf(t.url, OPERATOR);
    const hex = (bytes: number) =>
      fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => `0x${Buffer.from(b).toString('hex')}`);
    const authorization = fc.record({
      from: hex(20),
      to: fc.oneof(fc.constant(chain.payTo), hex(20)),
      value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 256n }).map(String), fc.string()),
      validAfter: fc.constant('0'),
      validBefore: fc.bigInt({ min: 0n, max: 2n ** 64n }).map(String),
      nonce: hex(32),
    });
    const payload = fc.record({
      x402Version: fc.constantFrom(1, 2, 3, '2'),
      scheme: fc.constantFrom('exact', 'upto'),
      network: fc.constantFrom('base-sepolia', chain.network, 'eip155:1'),
      accepted: fc.record({
        scheme: fc.constant('exact'),
        network: fc.constantFrom(chain.network, 'eip155:1'),
        asset: fc.constant(chain.usdc),
        amount: fc.constant('120000'),
        payTo: fc.constant(chain.payTo),
        maxTimeoutSeconds: fc.constant(300),
      }),
      payload: fc.record({ signature: fc.oneof(hex(65), hex(3), fc.string()), authorization }),
    });
    const header = fc.oneof(
      fc.string({ maxLength: 200 }),
      payload.map((p) => encodePayment(p)),
      fc.jsonValue().map((v) => encodePayment(v)),
    );
    await fc.assert(
      fc.asyncProperty(header, fc.constantFrom('payment-signature', 'x-payment'), async (value, name) => {
        // Only what HTTP can carry in a header.
        if (!/^[\x20-\x7e]*$/.test(value)) return;
        const res = await postJson(`${t.url}/v1/leases`, createBody, { [name]: value });
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(typeof res.body.error).toBe('string');
        expect(res.body.id).toBeUndefined();
      }),
      { numRuns: 150 },
    );
    const after = await ledgerOf(t.url, OPERATOR);
    expect(after.received).toBe(before.received);
    expect(after.leases).toEqual(before.leases);
  });

  it('grants no lease when the payment cannot be settled: a payer without the funds', async () => {
    const broke = await chain.payer(0n);
    const { headers } = await paymentFor(broke.key, `${t.url}/v1/leases`, createBody);
    const before = await ledgerOf(t.url, OPERATOR);
    const res = await postJson(`${t.url}/v1/leases`, createBody, headers);
    expect(res.status).toBe(402);
    expect(res.body.error).toBe('x402_settlement_failed');
    const after = await ledgerOf(t.url, OPERATOR);
    expect(after.leases).toEqual(before.leases);
    expect(after.received).toBe(before.received);
  });

  it('refuses an authorization whose nonce its payer already used for another transfer', async () => {
    const payer = await chain.payer(1_000_000n);
    const { payload, headers } = await paymentFor(payer.key, `${t.url}/v1/leases`, createBody);
    const auth = (payload.payload as { authorization: Record<string, string> }).authorization;
    // The payer signs a transfer to someone else with the same nonce and has it executed first.
    const elsewhere = await signTransfer(payer.key, {
      to: privateKeyToAccount('0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba').address,
      value: 5n,
      nonce: auth.nonce as Hex,
    });
    await executeTransfer(elsewhere);
    const res = await postJson(`${t.url}/v1/leases`, createBody, headers);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('token_spent');
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - 5n);
  });

  it('finds a settlement whose answer was lost on the chain: the retry gets the lease, charged once', async () => {
    const payer = await chain.payer(1_000_000n);
    const { payload, headers } = await paymentFor(payer.key, `${t.url}/v1/leases`, createBody);
    // As if the node had settled it and crashed before recording: the transfer is on the chain.
    const a = (payload.payload as { authorization: Record<string, string>; signature: Hex }).authorization;
    await executeTransfer({
      from: a.from as Hex,
      to: a.to as Hex,
      value: BigInt(a.value as string),
      validAfter: BigInt(a.validAfter as string),
      validBefore: BigInt(a.validBefore as string),
      nonce: a.nonce as Hex,
      signature: (payload.payload as { signature: Hex }).signature,
    });
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - 120n * RATE);
    const res = await postJson(`${t.url}/v1/leases`, createBody, headers);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ state: 'running', paid: 120 });
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - 120n * RATE);
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR))).toEqual([]);
  });

  it('takes nothing for an extension of a lease that has ended: the authorization stays unspent', async () => {
    const payer = await chain.payer(1_000_000n);
    const created = await post(x402Fetch(payer.key), `${t.url}/v1/leases`, createBody);
    const lease = (await created.json()) as Record<string, unknown>;
    // Signed while the lease runs (once it has ended, an unpaid extension is 409, no challenge).
    const extendUrl = `${t.url}/v1/leases/${lease.id}/extend`;
    const { payload, headers } = await paymentFor(payer.key, extendUrl, { seconds: 3600 });
    await postJson(
      `${t.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    );
    const res = await postJson(extendUrl, { seconds: 3600 }, headers);
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('lease_not_running');
    expect(res.body.refund ?? null).toBeNull();
    const nonce = (payload.payload as { authorization: { nonce: Hex } }).authorization.nonce;
    expect(await chain.authorizationState(payer.address, nonce)).toBe(false);
    expect(await chain.balanceOf(payer.address)).toBe(1_000_000n - 120n * RATE);
  });

  it('pays change for an authorization worth more than the price as ecash of the own mint', async () => {
    const payer = await chain.payer(1_000_000n);
    // Signed for 2 h (120 sat), spent on 1 h (60 sat): 60 sat of change.
    const { headers } = await paymentFor(payer.key, `${t.url}/v1/leases`, createBody);
    const res = await postJson(`${t.url}/v1/leases`, { ...createBody, seconds: 3600 }, headers);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ paid: 120 });
    expect(res.headers.get('x-cashu')).toBe(res.body.change);
    const wallet = new Wallet(t.mintUrl, { unit: 'sat' });
    await wallet.loadMint();
    expect(sumOf(await wallet.receive(res.body.change as string))).toBe(60);
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR))).toEqual([]);
  });
});

/** The x402 v2 payload of an EIP-3009 payment, its parts typed. */
type Eip3009Payment = PaymentPayload & {
  payload: { signature: string; authorization: Record<string, string> };
};

const chainOf = () =>
  defineChain({
    id: TEST_CHAIN_ID,
    name: 'x402 test chain',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [chain.rpcUrl] } },
  });

interface SignedTransfer {
  from: Hex;
  to: Hex;
  value: bigint;
  validAfter: bigint;
  validBefore: bigint;
  nonce: Hex;
  signature: Hex;
}

/** An EIP-3009 transfer signed by `key` (viem), as any wallet signs one. */
async function signTransfer(key: Hex, t: { to: Hex; value: bigint; nonce: Hex }): Promise<SignedTransfer> {
  const account = privateKeyToAccount(key);
  const message = {
    from: account.address,
    to: t.to,
    value: t.value,
    validAfter: 0n,
    validBefore: BigInt(Math.floor(Date.now() / 1000) + 600),
    nonce: t.nonce,
  };
  const signature = await account.signTypedData({
    domain: { name: 'USDC', version: '2', chainId: TEST_CHAIN_ID, verifyingContract: chain.usdc },
    types: {
      TransferWithAuthorization: [
        { name: 'from', type: 'address' },
        { name: 'to', type: 'address' },
        { name: 'value', type: 'uint256' },
        { name: 'validAfter', type: 'uint256' },
        { name: 'validBefore', type: 'uint256' },
        { name: 'nonce', type: 'bytes32' },
      ],
    },
    primaryType: 'TransferWithAuthorization',
    message,
  });
  return { ...message, signature };
}

/** Executes a signed transfer on the chain, gas paid by another of the chain's accounts. */
async function executeTransfer(s: SignedTransfer): Promise<void> {
  const relayer = createWalletClient({
    account: privateKeyToAccount('0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a'),
    chain: chainOf(),
    transport: http(chain.rpcUrl),
  });
  const { eip3009ABI } = await import('@x402/evm');
  await relayer.writeContract({
    address: chain.usdc,
    abi: eip3009ABI,
    functionName: 'transferWithAuthorization',
    args: [s.from, s.to, s.value, s.validAfter, s.validBefore, s.nonce, s.signature],
  });
  // Hardhat mines each transaction at once: the next read sees it.
}
