import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckStateEnum, getTokenMetadata, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { Alacarte } from '../../../src/sdk/client.js';
import { LocalWallet } from '../../../src/wallet/local-wallet.js';
import { tempDir } from '../../helpers/cli.js';
import {
  expectBalanced,
  freePort,
  fundedWallet,
  type LeaseTestNode,
  ledgerOf,
  type OperatorLedger,
  postJson,
  startLeaseNode,
  startMintNode,
  sumOf,
  tokenOf,
} from '../../helpers/lease-node.js';
import { LossyProxy } from './lossy-proxy.js';

/**
 * Money paid at several mints comes back from where it was paid: a lease paid at a trusted mint
 * and at the node's own mint is refunded from each (newest payment first, never more from a mint
 * than was kept there), every token real ecash of its mint; an extension payment a mint took for
 * a lease that ended comes back on every retry; the ledger keeps each mint's figures apart.
 */
const OPERATOR = 'operator-token-for-multi-mint-tests-0';
let external: Awaited<ReturnType<typeof startMintNode>>;
let proxy: LossyProxy;
let renter: LeaseTestNode;
/** The trusted mint as renters and the renting node know it (through the proxy). */
let extMintUrl: string;
const cleanup: Array<() => Promise<void>> = [];

beforeAll(async () => {
  external = await startMintNode();
  proxy = await LossyProxy.start(external.url);
  extMintUrl = `${proxy.url}/mint`;
  // 'ghost' is offered but has no image: its start fails after payment.
  renter = await startLeaseNode({ trustedMints: [extMintUrl], operatorToken: OPERATOR }, undefined, {
    images: ['busybox', 'ghost'],
  });
});
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
  await renter?.close();
  await proxy?.close();
  await external?.close();
});

const body = { offer: 'small', seconds: 7200, image: 'busybox' };
const auth = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });

interface MintRefund {
  mint: string;
  token: string | null;
  amount: number;
}

async function walletAt(mintUrl: string): Promise<Wallet> {
  const wallet = new Wallet(mintUrl, { unit: 'sat' });
  await wallet.loadMint();
  return wallet;
}

/** Receives every refund token at its own mint; returns what each was worth. */
async function redeemAll(refunds: readonly MintRefund[]): Promise<number[]> {
  const worth: number[] = [];
  for (const r of refunds) {
    expect(r.token).toMatch(/^cashuB/);
    expect(getTokenMetadata(String(r.token)).mint).toBe(r.mint);
    worth.push(sumOf(await (await walletAt(r.mint)).receive(String(r.token))));
  }
  return worth;
}

function figures(books: OperatorLedger, mint: string) {
  const m = books.by_mint.trusted.find((t) => t.mint === mint);
  if (!m) throw new Error(`no figures for ${mint}`);
  return m;
}

async function stop(node: LeaseTestNode, lease: Record<string, unknown>) {
  return postJson(`${node.url}/v1/leases/${lease.id}`, undefined, auth(lease.token), 'DELETE');
}

describe('a lease paid at several mints', () => {
  it('started at a trusted mint and extended at the own mint: each mint pays back its part', async () => {
    const before = await ledgerOf(renter.url, OPERATOR);
    const ext = await fundedWallet(extMintUrl, 200);
    const paid = await tokenOf(ext.wallet, extMintUrl, ext.proofs, 120);
    const first = await postJson(`${renter.url}/v1/leases`, body, { 'x-cashu': paid.token });
    expect(first.status).toBe(201);
    const lease = first.body;

    const own = await fundedWallet(renter.mintUrl, 100);
    const topUp = await tokenOf(own.wallet, renter.mintUrl, own.proofs, 60);
    const extend = await postJson(
      `${renter.url}/v1/leases/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect(extend.status).toBe(200);

    const stopped = await stop(renter, lease);
    expect(stopped.status).toBe(200);
    const refunded = Number(stopped.body.refunded);
    // Nearly three paid hours come back: the last hour (paid at the own mint) first, whole.
    expect(refunded).toBeGreaterThanOrEqual(178);
    expect(refunded).toBeLessThanOrEqual(180);
    const refunds = stopped.body.refunds as MintRefund[];
    expect(refunds.map((r) => [r.mint, r.amount])).toEqual([
      [renter.mintUrl, 60],
      [extMintUrl, refunded - 60],
    ]);
    expect(stopped.body.refund).toBe(refunds[0]?.token);
    // Stopping again shows the same tokens, not new ones.
    expect((await stop(renter, lease)).body).toEqual(stopped.body);
    expect(await redeemAll(refunds)).toEqual([60, refunded - 60]);

    const books = await ledgerOf(renter.url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
    const trusted = figures(books, extMintUrl);
    const was = figures(before, extMintUrl);
    expect(trusted.received - was.received).toBe(120);
    expect(trusted.refunded - was.refunded).toBe(refunded - 60);
    expect(trusted.charged - was.charged).toBe(180 - refunded);
    expect(books.by_mint.own.received - before.by_mint.own.received).toBe(60);
    expect(books.by_mint.own.refunded - before.by_mint.own.refunded).toBe(60);
    expect(books.by_mint.own.charged - before.by_mint.own.charged).toBe(0);
  });

  it('started at the own mint and extended at a trusted mint: the own mint never pays back what it did not take', async () => {
    const before = await ledgerOf(renter.url, OPERATOR);
    const own = await fundedWallet(renter.mintUrl, 200);
    const paid = await tokenOf(own.wallet, renter.mintUrl, own.proofs, 120);
    const first = await postJson(`${renter.url}/v1/leases`, body, { 'x-cashu': paid.token });
    expect(first.status).toBe(201);
    const lease = first.body;

    const ext = await fundedWallet(extMintUrl, 100);
    const topUp = await tokenOf(ext.wallet, extMintUrl, ext.proofs, 60);
    const extend = await postJson(
      `${renter.url}/v1/leases/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect(extend.status).toBe(200);
    expect((await ledgerOf(renter.url, OPERATOR)).by_mint.own.held).toBe(before.by_mint.own.held + 120);

    const stopped = await stop(renter, lease);
    expect(stopped.status).toBe(200);
    const refunded = Number(stopped.body.refunded);
    expect(refunded).toBeGreaterThanOrEqual(178);
    const refunds = stopped.body.refunds as MintRefund[];
    expect(refunds.map((r) => [r.mint, r.amount])).toEqual([
      [extMintUrl, 60],
      [renter.mintUrl, refunded - 60],
    ]);
    expect(stopped.body.refund).toBe(refunds[0]?.token);
    expect(await redeemAll(refunds)).toEqual([60, refunded - 60]);

    // The own mint's outstanding ecash still matches its Lightning (expectBalanced checks it): 200
    // came in by Lightning, the node kept 120 of it, and paid back only its own share.
    const books = await ledgerOf(renter.url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
    expect(books.mint.lightning_in - before.mint.lightning_in).toBe(200);
    expect(books.mint.outstanding - before.mint.outstanding).toBe(200 - 120 + (refunded - 60));
    expect(books.by_mint.own.refunded - before.by_mint.own.refunded).toBe(refunded - 60);
    expect(figures(books, extMintUrl).refunded - figures(before, extMintUrl).refunded).toBe(60);
  });

  it('a failed start gives everything back from the mint it was paid at, listed in refunds', async () => {
    const ext = await fundedWallet(extMintUrl, 200);
    const paid = await tokenOf(ext.wallet, extMintUrl, ext.proofs, 128);
    const failed = await postJson(
      `${renter.url}/v1/leases`,
      { ...body, image: 'ghost' },
      { 'x-cashu': paid.token },
    );
    expect(failed.status).toBe(503);
    expect(failed.body.error).toBe('start_failed');
    expect(failed.body.refunded).toBe(128);
    const refunds = failed.body.refunds as MintRefund[];
    expect(refunds.map((r) => [r.mint, r.amount])).toEqual([[extMintUrl, 128]]);
    expect(failed.body.refund).toBe(refunds[0]?.token);
    const again = await postJson(
      `${renter.url}/v1/leases`,
      { ...body, image: 'ghost' },
      { 'x-cashu': paid.token },
    );
    expect(again.body).toEqual(failed.body);
    expect(await redeemAll(refunds)).toEqual([128]);
    expect(expectBalanced(await ledgerOf(renter.url, OPERATOR))).toEqual([]);
  });

  it('an extension payment taken while the lease ended comes back on every retry, spendable once', async () => {
    const before = await ledgerOf(renter.url, OPERATOR);
    const { wallet, proofs } = await fundedWallet(extMintUrl, 200);
    const paid = await tokenOf(wallet, extMintUrl, proofs, 128);
    const first = await postJson(`${renter.url}/v1/leases`, body, { 'x-cashu': paid.token });
    expect(first.status).toBe(201);
    const lease = first.body;

    const topUp = await tokenOf(wallet, extMintUrl, paid.keep, 64);
    const held = proxy.holdNextSwap();
    const extending = postJson(
      `${renter.url}/v1/leases/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    await held.answered;
    expect((await stop(renter, lease)).status).toBe(200);
    held.release();
    const bounced = await extending;
    expect(bounced.status).toBe(409);
    expect(bounced.body).toMatchObject({ error: 'lease_not_running', refunded: 64 });
    expect(bounced.body.refunds).toEqual([{ mint: extMintUrl, token: bounced.body.refund, amount: 64 }]);
    expect(await wallet.checkProofsStates(topUp.send)).toEqual(
      topUp.send.map(() => expect.objectContaining({ state: CheckStateEnum.SPENT })),
    );

    // Retried twice: the same money back each time (derived again, not stored).
    for (let i = 0; i < 2; i++) {
      const retry = await postJson(
        `${renter.url}/v1/leases/${lease.id}/extend`,
        { seconds: 3600 },
        { 'x-cashu': topUp.token },
      );
      expect(retry.status).toBe(409);
      expect(retry.body).toEqual(bounced.body);
    }
    const other = await walletAt(extMintUrl);
    expect(sumOf(await other.receive(String(bounced.body.refund)))).toBe(64);
    // Spendable once: the copy from a retry is the same ecash, already received.
    await expect(other.receive(String(bounced.body.refund))).rejects.toThrow();
    const afterSpent = await postJson(
      `${renter.url}/v1/leases/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect(afterSpent.status).toBe(409);
    expect(afterSpent.body.refund).toBe(bounced.body.refund);

    // The ledger records the returned payment at its mint, outside what was received.
    const books = await ledgerOf(renter.url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
    expect(books.bounced - before.bounced).toBe(64);
    expect(figures(books, extMintUrl).bounced - figures(before, extMintUrl).bounced).toBe(64);
    expect(figures(books, extMintUrl).received - figures(before, extMintUrl).received).toBe(120);
  });

  it('an extension whose swap answer was lost, retried after the lease ended, gets its money back', async () => {
    const { wallet, proofs } = await fundedWallet(extMintUrl, 200);
    const paid = await tokenOf(wallet, extMintUrl, proofs, 120);
    const first = await postJson(`${renter.url}/v1/leases`, body, { 'x-cashu': paid.token });
    expect(first.status).toBe(201);
    const topUp = await tokenOf(wallet, extMintUrl, paid.keep, 64);
    proxy.dropSwapAnswers = 1;
    const lost = await postJson(
      `${renter.url}/v1/leases/${first.body.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect(lost.status).toBe(503);
    // The mint did swap: the payer's proofs are gone there, and nothing was recorded.
    expect(await wallet.checkProofsStates(topUp.send)).toEqual(
      topUp.send.map(() => expect.objectContaining({ state: CheckStateEnum.SPENT })),
    );
    expect((await stop(renter, first.body)).status).toBe(200);
    const retry = await postJson(
      `${renter.url}/v1/leases/${first.body.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect(retry.status).toBe(409);
    expect(retry.body).toMatchObject({ error: 'lease_not_running', refunded: 64 });
    expect(sumOf(await (await walletAt(extMintUrl)).receive(String(retry.body.refund)))).toBe(64);
  });

  it('an extension of an ended lease with a fresh token of a trusted mint takes nothing', async () => {
    const { wallet, proofs } = await fundedWallet(extMintUrl, 200);
    const paid = await tokenOf(wallet, extMintUrl, proofs, 120);
    const first = await postJson(`${renter.url}/v1/leases`, body, { 'x-cashu': paid.token });
    expect((await stop(renter, first.body)).status).toBe(200);
    const topUp = await tokenOf(wallet, extMintUrl, paid.keep, 64);
    const late = await postJson(
      `${renter.url}/v1/leases/${first.body.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect(late.status).toBe(409);
    expect(late.body.error).toBe('lease_not_running');
    expect(late.body.refund).toBeUndefined();
    expect(await wallet.checkProofsStates(topUp.send)).toEqual(
      topUp.send.map(() => expect.objectContaining({ state: CheckStateEnum.UNSPENT })),
    );
  });
});

describe('the SDK stopping a lease paid at several mints', () => {
  it("takes every mint's refund into the wallet", async () => {
    const ext = await fundedWallet(extMintUrl, 200);
    const paid = await tokenOf(ext.wallet, extMintUrl, ext.proofs, 120);
    const first = await postJson(`${renter.url}/v1/leases`, body, { 'x-cashu': paid.token });
    const own = await fundedWallet(renter.mintUrl, 100);
    const topUp = await tokenOf(own.wallet, renter.mintUrl, own.proofs, 60);
    const extend = await postJson(
      `${renter.url}/v1/leases/${first.body.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect([first.status, extend.status]).toEqual([201, 200]);

    const wallet = LocalWallet.open({ home: tempDir('multi-mint-sdk') });
    cleanup.push(async () => wallet.close());
    const sdk = new Alacarte({ url: renter.url, wallet, retryDelayMs: 10 });
    const stopped = await sdk.stop(String(first.body.id), { token: String(first.body.token) });
    expect(stopped.refunded).toBeGreaterThanOrEqual(178);
    expect(Number(wallet.balance(renter.mintUrl).value)).toBe(60);
    expect(Number(wallet.balance(extMintUrl).value)).toBe(stopped.refunded - 60);
    expect(wallet.pendingOps()).toEqual([]);
  });
});

describe('the SDK paying an extension a mint took while the lease ended', () => {
  it('settles the payment with the money handed back, nothing left pending', async () => {
    const own = await fundedWallet(renter.mintUrl, 120);
    const paid = await tokenOf(own.wallet, renter.mintUrl, own.proofs, 120);
    const first = await postJson(`${renter.url}/v1/leases`, body, { 'x-cashu': paid.token });
    expect(first.status).toBe(201);

    const wallet = LocalWallet.open({ home: tempDir('multi-mint-sdk-bounce') });
    cleanup.push(async () => wallet.close());
    // Exactly the price: the wallet pays without a swap of its own, so the next swap the mint
    // sees is the node's.
    const topup = await wallet.createTopup(extMintUrl, Amount.of(60));
    await wallet.completeTopup(topup.opId);
    expect(Number(wallet.balance(extMintUrl).value)).toBe(60);
    const sdk = new Alacarte({ url: renter.url, wallet, retryDelayMs: 10 });

    const held = proxy.holdNextSwap();
    const extending = sdk.extend(String(first.body.id), 3600).catch((err: unknown) => err);
    await held.answered;
    expect((await stop(renter, first.body)).status).toBe(200);
    held.release();
    expect(await extending).toMatchObject({ code: 'lease_not_running' });
    // The 60 paid came back whole (no fees at that mint): the wallet holds all of it again.
    expect(Number(wallet.balance(extMintUrl).value)).toBe(60);
    expect(wallet.pendingOps()).toEqual([]);
  });
});

describe('a lease paid at several mints whose sandbox vanished while the node was down', () => {
  it('is refunded from each mint after reconciliation', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'alacarte-multimint-'));
    chmodSync(dataDir, 0o711);
    cleanup.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const config = {
      trustedMints: [extMintUrl],
      operatorToken: OPERATOR,
      port: await freePort(),
      ssh: { port: await freePort() },
    };
    const first = await startLeaseNode(config, dataDir);
    let closed = false;
    cleanup.push(async () => {
      if (!closed) await first.close();
    });
    const ext = await fundedWallet(extMintUrl, 200);
    const paid = await tokenOf(ext.wallet, extMintUrl, ext.proofs, 120);
    const created = await postJson(`${first.url}/v1/leases`, body, { 'x-cashu': paid.token });
    expect(created.status).toBe(201);
    const lease = created.body;
    const own = await fundedWallet(first.mintUrl, 100);
    const topUp = await tokenOf(own.wallet, first.mintUrl, own.proofs, 60);
    const extend = await postJson(
      `${first.url}/v1/leases/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect(extend.status).toBe(200);
    await first.driver.stop({ leaseId: String(lease.id) });
    await first.close({ keepSandboxes: true });
    closed = true;

    const second = await startLeaseNode(config, dataDir);
    cleanup.push(() => second.close());
    const stopped = await stop(second, lease);
    expect(stopped.status).toBe(200);
    const refunded = Number(stopped.body.refunded);
    expect(refunded).toBeGreaterThanOrEqual(170);
    const refunds = stopped.body.refunds as MintRefund[];
    expect(refunds.map((r) => [r.mint, r.amount])).toEqual([
      [second.mintUrl, 60],
      [extMintUrl, refunded - 60],
    ]);
    expect(await redeemAll(refunds)).toEqual([60, refunded - 60]);
    expect(expectBalanced(await ledgerOf(second.url, OPERATOR))).toEqual([]);
  });
});
