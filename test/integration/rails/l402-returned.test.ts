import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Proof, Wallet } from '@cashu/cashu-ts';
import { afterAll, describe, expect, it } from 'vitest';
import {
  expectBalanced,
  fundedWallet,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  satOffer,
  startLeaseNode,
  sumOf,
} from '../../helpers/lease-node.js';

/**
 * The money rule for L402: an invoice paid before the request is money the node holds, so a paid
 * credential that can no longer buy what it was issued for (the price rose, it expired) is refused
 * with its payment handed back as the own mint's ecash, the same token on every retry.
 */

const OPERATOR = 'operator-token-for-tests-0123456789';
const createBody = { offer: 'small', seconds: 3600, image: 'busybox' };
const opened: LeaseTestNode[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const node of opened) await node.close().catch(() => undefined);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function start(config: Record<string, unknown>, dir?: string, clock?: () => Date) {
  const node = await startLeaseNode({ operatorToken: OPERATOR, ...config } as never, dir, { clock });
  opened.push(node);
  return node;
}

/** The L402 challenge of a create, paid by melting ecash of the node's own mint (not redeemed). */
async function paidCredential(t: LeaseTestNode): Promise<{ authorization: string }> {
  const res = await postJson(`${t.url}/v1/leases`, createBody);
  expect(res.status).toBe(402);
  const l402 = res.body.l402 as { invoice: string; macaroon: string };
  const { wallet, proofs } = await fundedWallet(t.mintUrl, 200);
  const quote = await wallet.createMeltQuoteBolt11(l402.invoice);
  const { send } = await wallet.send(Number(quote.amount) + Number(quote.fee_reserve), proofs, {
    includeFees: true,
  });
  const melted = await wallet.meltProofsBolt11(quote, send);
  const preimage = melted.quote.payment_preimage;
  if (!preimage) throw new Error('the melt gave no preimage');
  return { authorization: `L402 ${l402.macaroon}:${preimage}` };
}

/** What a stranger's wallet gets for `token` at the node's own mint. */
async function received(t: LeaseTestNode, token: string): Promise<number> {
  const other = new Wallet(t.mintUrl, { unit: 'sat' });
  await other.loadMint();
  const proofs: Proof[] = await other.receive(token);
  return sumOf(proofs);
}

describe('a paid L402 credential that can no longer buy its lease', () => {
  it('is refused after the price rose, with the full payment returned once, the same on every retry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-l402-returned-'));
    dirs.push(dir);
    const before = await start({ offers: [satOffer('small', 1, 60)] }, dir);
    const auth = await paidCredential(before);
    await before.close();
    opened.splice(opened.indexOf(before), 1);
    // The operator raises the price: the credential's 60 sat no longer buys an hour.
    const t = await start({ offers: [satOffer('small', 1, 61)] }, dir);

    const refused = await postJson(`${t.url}/v1/leases`, createBody, auth);
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: 'insufficient_amount', refunded: 60 });
    expect(typeof refused.body.refund).toBe('string');
    const again = await postJson(`${t.url}/v1/leases`, createBody, auth);
    expect(again.status).toBe(400);
    expect(again.body.refund).toBe(refused.body.refund);

    expect(await received(t, refused.body.refund as string)).toBe(60);
    // Spent now: the retry's token is the same one, never a second.
    const third = await postJson(`${t.url}/v1/leases`, createBody, auth);
    expect(third.body.refund).toBe(refused.body.refund);
    const other = new Wallet(t.mintUrl, { unit: 'sat' });
    await other.loadMint();
    await expect(other.receive(third.body.refund as string)).rejects.toThrow();

    // The price back where it was: the returned payment buys nothing now; its token shows again.
    await t.close();
    opened.splice(opened.indexOf(t), 1);
    const cheaper = await start({ offers: [satOffer('small', 1, 60)] }, dir);
    const spent = await postJson(`${cheaper.url}/v1/leases`, createBody, auth);
    expect(spent.status).toBe(400);
    expect(spent.body).toMatchObject({ error: 'token_spent', refunded: 60 });
    // The same proofs, spent already (a second token would be receivable).
    const wallet = new Wallet(cheaper.mintUrl, { unit: 'sat' });
    await wallet.loadMint();
    await expect(wallet.receive(String(spent.body.refund))).rejects.toThrow();

    expect(await cheaper.driver.list()).toHaveLength(0);
    const ledger = await ledgerOf(cheaper.url, OPERATOR);
    expect(ledger.leases.running).toBe(0);
    expect(ledger.received).toBe(0);
    expect(ledger.bounced).toBe(60);
    expect(expectBalanced(ledger)).toEqual([]);
  });

  it('takes a paid extension after the price rose: the lease keeps the price it was bought at', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-l402-returned-'));
    dirs.push(dir);
    const before = await start({ offers: [satOffer('small', 1, 60)] }, dir);
    const { wallet, proofs } = await fundedWallet(before.mintUrl, 200);
    const { send } = await wallet.send(60, proofs, { includeFees: true });
    const { getEncodedToken } = await import('@cashu/cashu-ts');
    const created = await postJson(`${before.url}/v1/leases`, createBody, {
      'x-cashu': getEncodedToken({ mint: before.mintUrl, unit: 'sat', proofs: send }),
    });
    expect(created.status).toBe(201);
    const extendUrl = (t: LeaseTestNode) => `${t.url}/v1/leases/${created.body.id}/extend`;
    const challenge = await postJson(extendUrl(before), { seconds: 3600 });
    expect(challenge.status).toBe(402);
    const l402 = challenge.body.l402 as { invoice: string; macaroon: string };
    const melt = await fundedWallet(before.mintUrl, 200);
    const quote = await melt.wallet.createMeltQuoteBolt11(l402.invoice);
    const paid = await melt.wallet.send(Number(quote.amount) + Number(quote.fee_reserve), melt.proofs, {
      includeFees: true,
    });
    const melted = await melt.wallet.meltProofsBolt11(quote, paid.send);
    const auth = { authorization: `L402 ${l402.macaroon}:${melted.quote.payment_preimage}` };
    await before.close({ keepSandboxes: true });
    opened.splice(opened.indexOf(before), 1);
    const t = await start({ offers: [satOffer('small', 1, 61)] }, dir);

    // An extension is priced at the lease's own offer, as bought: the credential still pays.
    const extended = await postJson(extendUrl(t), { seconds: 3600 }, auth);
    expect(extended.status).toBe(200);
    expect(extended.body.refund).toBeUndefined();
    const again = await postJson(extendUrl(t), { seconds: 3600 }, auth);
    expect(again.status).toBe(200);
    expect(again.body.expires_at).toBe(extended.body.expires_at);
    const ledger = await ledgerOf(t.url, OPERATOR);
    expect(ledger.received).toBe(120);
    expect(ledger.bounced).toBe(0);
    expect(expectBalanced(ledger)).toEqual([]);
  });

  it('is refused once its offer is gone, with the payment returned', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-l402-returned-'));
    dirs.push(dir);
    const before = await start({ offers: [satOffer('small', 1, 60), satOffer('large', 2, 120)] }, dir);
    const auth = await paidCredential(before);
    await before.close();
    opened.splice(opened.indexOf(before), 1);
    // The operator stops selling the offer the credential was issued for.
    const t = await start({ offers: [satOffer('large', 2, 120)] }, dir);
    const refused = await postJson(`${t.url}/v1/leases`, createBody, auth);
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: 'invalid_request', refunded: 60 });
    const again = await postJson(`${t.url}/v1/leases`, createBody, auth);
    expect(again.body.refund).toBe(refused.body.refund);
    expect(await received(t, refused.body.refund as string)).toBe(60);
    // A hostile request for the gone offer with a credential of another request gets nothing.
    const forged = await postJson(`${t.url}/v1/leases`, { ...createBody, seconds: 7200 }, auth);
    expect(forged.status).toBe(400);
    expect(forged.body.refund).toBeUndefined();
    const ledger = await ledgerOf(t.url, OPERATOR);
    expect(ledger.received).toBe(0);
    expect(ledger.bounced).toBe(60);
    expect(expectBalanced(ledger)).toEqual([]);
  });

  it('is refused once expired if its invoice was paid, with the payment returned', async () => {
    let offset = 0;
    const t = await start({}, undefined, () => new Date(Date.now() + offset));
    const auth = await paidCredential(t);
    // Past the invoice's hour and the macaroon's hour of grace.
    offset = 7300_000;
    const refused = await postJson(`${t.url}/v1/leases`, createBody, auth);
    expect(refused.status).toBe(402);
    expect(refused.body).toMatchObject({ error: 'payment_required', refunded: 60 });
    const again = await postJson(`${t.url}/v1/leases`, createBody, auth);
    expect(again.body.refund).toBe(refused.body.refund);
    expect(await received(t, refused.body.refund as string)).toBe(60);
    expect(await t.driver.list()).toHaveLength(0);
    const ledger = await ledgerOf(t.url, OPERATOR);
    expect(ledger.received).toBe(0);
    expect(ledger.bounced).toBe(60);
    expect(expectBalanced(ledger)).toEqual([]);
  });

  it('still asks for payment (402, nothing returned) when an expired credential was never paid', async () => {
    let offset = 0;
    // Invoices of this node's fake backend settle only when paid.
    const t = await start(
      { mint: { lightning: { settleDelayMs: 3_600_000 } } },
      undefined,
      () => new Date(Date.now() + offset),
    );
    const res = await postJson(`${t.url}/v1/leases`, createBody);
    const l402 = res.body.l402 as { invoice: string; macaroon: string };
    // A payer who somehow knew the preimage without paying (the test reads the fake backend's).
    const invoices = (t.node.lightning as unknown as { invoices: Map<string, { preimage: string }> })
      .invoices;
    const { Invoice } = await import('@getalby/lightning-tools/bolt11');
    const preimage = invoices.get(new Invoice({ pr: l402.invoice }).paymentHash)?.preimage;
    expect(preimage).toBeDefined();
    offset = 7300_000;
    const unpaid = await postJson(`${t.url}/v1/leases`, createBody, {
      authorization: `L402 ${l402.macaroon}:${preimage}`,
    });
    expect(unpaid.status).toBe(402);
    expect(unpaid.body.error).toBe('payment_required');
    expect(unpaid.body.refund).toBeUndefined();
    const ledger = await ledgerOf(t.url, OPERATOR);
    expect(ledger.bounced).toBe(0);
    expect(expectBalanced(ledger)).toEqual([]);
  });
});
