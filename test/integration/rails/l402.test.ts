import { type Proof, Wallet } from '@cashu/cashu-ts';
import { fetchWithL402, NoStorage, parseL402 } from '@getalby/lightning-tools/l402';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectBalanced,
  fundedWallet,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  startLeaseNode,
  sumOf,
} from '../../helpers/lease-node.js';

const OPERATOR = 'operator-token-for-tests-0123456789';
let t: LeaseTestNode;
beforeAll(async () => {
  t = await startLeaseNode({ operatorToken: OPERATOR });
});
afterAll(async () => {
  await t?.close();
});

const createBody = { offer: 'small', seconds: 7200, image: 'busybox' };

/**
 * A WebLN provider for the stock L402 client whose wallet is ecash: it pays an invoice by melting
 * proofs at the node's own mint (a cashu-ts melt), which hands back the payment's preimage.
 */
async function ecashWebln(amount: number) {
  const { wallet, proofs } = await fundedWallet(t.mintUrl, amount);
  let purse: Proof[] = proofs;
  const paid: string[] = [];
  return {
    paid,
    balance: () => sumOf(purse),
    webln: {
      enable: async () => undefined,
      sendPayment: async (invoice: string) => {
        const quote = await wallet.createMeltQuoteBolt11(invoice);
        const need = Number(quote.amount) + Number(quote.fee_reserve);
        const { keep, send } = await wallet.send(need, purse, { includeFees: true });
        const melted = await wallet.meltProofsBolt11(quote, send);
        purse = [...keep, ...melted.change];
        const preimage = melted.quote.payment_preimage;
        if (!preimage) throw new Error('the melt gave no preimage');
        paid.push(invoice);
        return { preimage };
      },
    },
  };
}

/** The stock client's fetch, with nothing remembered between calls. */
function l402Fetch(url: string, body: unknown, webln: unknown): Promise<Response> {
  return fetchWithL402(
    url,
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
    // biome-ignore lint/suspicious/noExplicitAny: the WebLN type wants every provider method; the client calls two
    { webln: webln as any, store: new NoStorage() },
  );
}

async function challengeFor(url: string, body: unknown) {
  const res = await postJson(url, body);
  expect(res.status).toBe(402);
  const header = res.headers.get('www-authenticate') ?? '';
  const l402 = res.body.l402 as { invoice: string; macaroon: string };
  return { res, header, l402 };
}

describe('L402 (Lightning) as a second payment rail', () => {
  it('offers an L402 challenge beside the Cashu one, for exactly the price', async () => {
    const { res, header, l402 } = await challengeFor(`${t.url}/v1/leases`, createBody);
    expect(res.headers.get('x-cashu')).toMatch(/^creqA/);
    expect(header).toMatch(/^L402 macaroon="[A-Za-z0-9+/=]+", invoice="lnbc/);
    expect(header).toContain('LSAT macaroon=');
    const parsed = parseL402(header);
    expect(parsed.macaroon).toBe(l402.macaroon);
    expect(parsed.invoice).toBe(l402.invoice);
    const { Invoice } = await import('@getalby/lightning-tools/bolt11');
    expect(new Invoice({ pr: l402.invoice }).satoshi).toBe(120);
  });

  it('says in /v1/offers that Lightning (L402) pays here, beside the Cashu mints', async () => {
    const res = await fetch(`${t.url}/v1/offers`);
    const offers = (await res.json()) as { payment: Record<string, unknown> };
    expect(offers.payment).toEqual({
      cashu: { mints: [t.mintUrl], unit: 'sat' },
      l402: { unit: 'sat' },
    });
  });

  it('rents, extends and stops a lease paid over Lightning with the stock client', async () => {
    const payer = await ecashWebln(1000);
    const created = await l402Fetch(`${t.url}/v1/leases`, createBody, payer.webln);
    expect(created.status).toBe(201);
    const lease = (await created.json()) as Record<string, unknown>;
    expect(lease).toMatchObject({ state: 'running', paid: 120, unit: 'sat', change: null });
    expect(payer.paid).toHaveLength(1);
    expect(payer.balance()).toBe(1000 - 120);

    const extended = await l402Fetch(`${t.url}/v1/leases/${lease.id}/extend`, { seconds: 3600 }, payer.webln);
    expect(extended.status).toBe(200);
    const after = (await extended.json()) as Record<string, unknown>;
    expect(after).toMatchObject({ id: lease.id, paid: 180 });
    expect(Date.parse(String(after.expires_at)) - Date.parse(String(lease.expires_at))).toBe(3600_000);

    const stopped = await postJson(
      `${t.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    );
    expect(stopped.status).toBe(200);
    expect(stopped.body.state).toBe('stopped');
    // The unused time comes back as ecash of the node's own mint, which any wallet takes.
    const refunded = stopped.body.refunded as number;
    expect(refunded).toBeGreaterThan(170);
    const other = new Wallet(t.mintUrl, { unit: 'sat' });
    await other.loadMint();
    expect(sumOf(await other.receive(stopped.body.refund as string))).toBe(refunded);
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR))).toEqual([]);
  });

  it('answers a replay with the same lease, never a second one, and refuses it for another body', async () => {
    const payer = await ecashWebln(500);
    const { l402 } = await challengeFor(`${t.url}/v1/leases`, createBody);
    const { preimage } = await payer.webln.sendPayment(l402.invoice);
    const auth = { authorization: `L402 ${l402.macaroon}:${preimage}` };
    const first = await postJson(`${t.url}/v1/leases`, createBody, auth);
    expect(first.status).toBe(201);
    const again = await postJson(`${t.url}/v1/leases`, createBody, auth);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(again.body.token).toBe(first.body.token);
    // LSAT is the same credential under its older name.
    const lsat = await postJson(`${t.url}/v1/leases`, createBody, {
      authorization: `LSAT ${l402.macaroon}:${preimage}`,
    });
    expect(lsat.body.id).toBe(first.body.id);

    const other = await postJson(`${t.url}/v1/leases`, { ...createBody, seconds: 3600 }, auth);
    expect(other.status).toBe(409);
    expect(other.body.error).toBe('idempotency_conflict');
    // Nor does a create's credential pay for an extension.
    const ext = await postJson(`${t.url}/v1/leases/${first.body.id}/extend`, { seconds: 7200 }, auth);
    expect(ext.status).toBe(409);
    expect(ext.body.error).toBe('idempotency_conflict');
    expect(payer.balance()).toBe(500 - 120);
    const ledger = await ledgerOf(t.url, OPERATOR);
    expect(expectBalanced(ledger)).toEqual([]);
  });

  it('hands back a paid extension of a lease that has ended as ecash, once, the same on every retry', async () => {
    const payer = await ecashWebln(1000);
    const created = await l402Fetch(`${t.url}/v1/leases`, createBody, payer.webln);
    const lease = (await created.json()) as Record<string, unknown>;
    // The challenge is got while the lease runs (once it has ended, an unpaid extension is 409).
    const { l402 } = await challengeFor(`${t.url}/v1/leases/${lease.id}/extend`, { seconds: 3600 });
    await postJson(
      `${t.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    );
    const { preimage } = await payer.webln.sendPayment(l402.invoice);
    const auth = { authorization: `L402 ${l402.macaroon}:${preimage}` };
    const bounced = await postJson(`${t.url}/v1/leases/${lease.id}/extend`, { seconds: 3600 }, auth);
    expect(bounced.status).toBe(409);
    expect(bounced.body).toMatchObject({ error: 'lease_not_running', refunded: 60 });
    const again = await postJson(`${t.url}/v1/leases/${lease.id}/extend`, { seconds: 3600 }, auth);
    expect(again.body.refund).toBe(bounced.body.refund);
    const other = new Wallet(t.mintUrl, { unit: 'sat' });
    await other.loadMint();
    expect(sumOf(await other.receive(bounced.body.refund as string))).toBe(60);
    const ledger = await ledgerOf(t.url, OPERATOR);
    expect(ledger.bounced).toBeGreaterThanOrEqual(60);
    expect(expectBalanced(ledger)).toEqual([]);
  });

  it('grants nothing for a wrong preimage, a forged macaroon or an unpaid invoice', async () => {
    const before = await ledgerOf(t.url, OPERATOR);
    const { l402 } = await challengeFor(`${t.url}/v1/leases`, createBody);
    const wrong = await postJson(`${t.url}/v1/leases`, createBody, {
      authorization: `L402 ${l402.macaroon}:${'ab'.repeat(32)}`,
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('l402_invalid');

    // A macaroon with one byte changed no longer verifies.
    const raw = Buffer.from(l402.macaroon, 'base64');
    raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
    const forged = await postJson(`${t.url}/v1/leases`, createBody, {
      authorization: `L402 ${raw.toString('base64')}:${'ab'.repeat(32)}`,
    });
    expect(forged.status).toBe(401);
    expect(forged.body.error).toBe('l402_invalid');

    for (const junk of ['L402 ', 'L402 x:y', `L402 ${'A'.repeat(10_000)}:00`, 'L402 :::']) {
      const res = await postJson(`${t.url}/v1/leases`, createBody, { authorization: junk });
      expect([401, 402]).toContain(res.status);
    }
    const after = await ledgerOf(t.url, OPERATOR);
    expect(after.received).toBe(before.received);
    expect(after.leases.running).toBe(before.leases.running);
  });
});

describe('L402 invoices that are not paid', () => {
  let slow: LeaseTestNode;
  beforeAll(async () => {
    // Invoices of this node's fake backend settle only when paid.
    slow = await startLeaseNode({ mint: { lightning: { settleDelayMs: 3_600_000 } } } as never);
  });
  afterAll(async () => {
    await slow?.close();
  });

  it('answers 402 and grants nothing until the invoice is paid', async () => {
    const res = await postJson(`${slow.url}/v1/leases`, createBody);
    const l402 = res.body.l402 as { invoice: string; macaroon: string };
    // A payer who somehow knew the preimage without paying (the test reads the fake backend's).
    const invoices = (slow.node.lightning as unknown as { invoices: Map<string, { preimage: string }> })
      .invoices;
    const { Invoice } = await import('@getalby/lightning-tools/bolt11');
    const hash = new Invoice({ pr: l402.invoice }).paymentHash;
    const preimage = invoices.get(hash)?.preimage;
    expect(preimage).toBeDefined();
    const unpaid = await postJson(`${slow.url}/v1/leases`, createBody, {
      authorization: `L402 ${l402.macaroon}:${preimage}`,
    });
    expect(unpaid.status).toBe(402);
    expect(unpaid.body.error).toBe('payment_required');
    expect(await slow.driver.list()).toHaveLength(0);
  });
});
