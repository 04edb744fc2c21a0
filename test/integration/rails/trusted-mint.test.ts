import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CheckStateEnum,
  decodePaymentRequest,
  getDecodedToken,
  getTokenMetadata,
  type Proof,
  Wallet,
} from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { AlacarteNode } from '../../../src/node.js';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  sumOf,
  tokenOf,
} from '../../helpers/lease-node.js';
import { storedText } from '../../helpers/store-text.js';
import { LossyProxy } from './lossy-proxy.js';

/** An alacarte node that only serves its mint: here, another operator's mint. */
async function startMintNode(): Promise<{ node: AlacarteNode; url: string; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-extmint-'));
  const node = await AlacarteNode.create(
    loadConfig({ flags: { port: 0, dataDir: dir, logLevel: 'silent' } }),
  );
  const { url } = await node.listen();
  return {
    node,
    url,
    async close() {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let external: Awaited<ReturnType<typeof startMintNode>>;
let untrusted: Awaited<ReturnType<typeof startMintNode>>;
let proxy: LossyProxy;
let renter: LeaseTestNode;
/** The trusted mint as renters and the renting node know it (through the proxy). */
let extMintUrl: string;

beforeAll(async () => {
  external = await startMintNode();
  untrusted = await startMintNode();
  proxy = await LossyProxy.start(external.url);
  extMintUrl = `${proxy.url}/mint`;
  renter = await startLeaseNode({ trustedMints: [extMintUrl] });
});
afterAll(async () => {
  await renter?.close();
  await proxy?.close();
  await external?.close();
  await untrusted?.close();
});

const createBody = { offer: 'small', seconds: 7200, image: 'busybox' };

async function walletAt(mintUrl: string): Promise<Wallet> {
  const wallet = new Wallet(mintUrl, { unit: 'sat' });
  await wallet.loadMint();
  return wallet;
}

function keysetIds(wallet: Wallet): string[] {
  return wallet.keyChain.getKeysets().map((k) => k.id);
}

async function states(wallet: Wallet, proofs: Proof[]): Promise<CheckStateEnum[]> {
  return (await wallet.checkProofsStates(proofs)).map((s) => s.state);
}

describe('tokens of a trusted external mint', () => {
  it('lists the trusted mint in offers and in the 402 challenge', async () => {
    const offers = (await (await fetch(`${renter.url}/v1/offers`)).json()) as {
      payment: { cashu: { mints: string[] } };
    };
    expect(offers.payment.cashu.mints).toEqual([renter.mintUrl, extMintUrl]);
    const res = await postJson(`${renter.url}/v1/leases`, createBody);
    expect(res.status).toBe(402);
    expect(res.body.mints).toEqual([renter.mintUrl, extMintUrl]);
    expect(decodePaymentRequest(res.headers.get('x-cashu') ?? '').mints).toEqual([
      renter.mintUrl,
      extMintUrl,
    ]);
  });

  it('rents for a token of the trusted mint; change and refund are ecash of that mint', async () => {
    const { wallet, proofs } = await fundedWallet(extMintUrl, 200);
    const { token, send, keep } = await tokenOf(wallet, extMintUrl, proofs, 128);
    const first = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ state: 'running', paid: 128, unit: 'sat' });
    const change = first.body.change as string;
    expect(change).toMatch(/^cashuB/);
    expect(getTokenMetadata(change).mint).toBe(extMintUrl);
    expect(first.headers.get('x-cashu')).toBe(change);

    // The paid proofs are spent at the external mint; the renting node's own mint never saw them.
    expect(await states(wallet, send)).toEqual(send.map(() => CheckStateEnum.SPENT));

    // Replay: same answer, no second swap.
    const swapsBefore = proxy.swaps;
    const replay = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(first.body);
    expect(proxy.swaps).toBe(swapsBefore);

    // A wallet of the external mint receives the change: it is real ecash there.
    const other = await walletAt(extMintUrl);
    expect(sumOf(await other.receive(change))).toBe(8);

    const lease = first.body;
    const exec = await postJson(
      `${renter.url}/v1/leases/${lease.id}/exec`,
      { command: ['echo', 'paid elsewhere'] },
      { authorization: `Bearer ${lease.token}` },
    );
    expect(exec.body).toMatchObject({ exit_code: 0, stdout: 'paid elsewhere\n' });

    // Anyone may extend with the trusted mint's ecash too; its change is that mint's ecash.
    const topUp = await tokenOf(wallet, extMintUrl, keep, 64);
    const extend = await postJson(
      `${renter.url}/v1/leases/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect(extend.status).toBe(200);
    expect(sumOf(await other.receive(extend.body.change as string))).toBe(4);

    const stop = await postJson(
      `${renter.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
    expect(stop.body.state).toBe('stopped');
    // Nearly three paid hours come back, out of what the node kept of both payments.
    const refunded = Number(stop.body.refunded);
    expect(refunded).toBeGreaterThanOrEqual(178);
    const refund = stop.body.refund as string;
    expect(refund).toMatch(/^cashuB/);
    expect(getTokenMetadata(refund).mint).toBe(extMintUrl);
    const again = await postJson(
      `${renter.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    );
    expect(again.body).toEqual(stop.body);
    expect(sumOf(await other.receive(refund))).toBe(refunded);

    // The renting node's store holds none of the ecash it took or handed out.
    const stored = await storedText(renter.dataDir, renter.node.db);
    expect(stored.length).toBeGreaterThan(0);
    for (const secret of [token, change, refund, topUp.token, String(lease.token)]) {
      expect(stored.includes(secret)).toBe(false);
    }
    for (const p of [...getDecodedToken(change, keysetIds(other)).proofs, ...send]) {
      expect(stored.includes(p.secret)).toBe(false);
    }
  });

  it('refuses a token of an untrusted mint and leaves it unspent there', async () => {
    const untrustedMint = `${untrusted.url}/mint`;
    const { wallet, proofs } = await fundedWallet(untrustedMint, 150);
    const { token, send } = await tokenOf(wallet, untrustedMint, proofs, 130);
    const res = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('mint_not_accepted');
    expect(await states(wallet, send)).toEqual(send.map(() => CheckStateEnum.UNSPENT));
  });

  it('returns an extension payment whose lease ended while the mint was swapping it', async () => {
    const { wallet, proofs } = await fundedWallet(extMintUrl, 200);
    const paid = await tokenOf(wallet, extMintUrl, proofs, 128);
    const first = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': paid.token });
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
    const stop = await postJson(
      `${renter.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
    held.release();
    const extend = await extending;
    expect(extend.status).toBe(409);
    expect(extend.body.error).toBe('lease_not_running');
    // The mint took the top-up, and it comes back whole to the payer.
    expect(await states(wallet, topUp.send)).toEqual(topUp.send.map(() => CheckStateEnum.SPENT));
    const other = await walletAt(extMintUrl);
    expect(sumOf(await other.receive(extend.body.refund as string))).toBe(64);
    expect(extend.body.refunded).toBe(64);
    // The lease kept only its first payment.
    const payments = await renter.node.db
      .selectFrom('payments')
      .select('purpose')
      .where('lease_id', '=', String(lease.id))
      .execute();
    expect(payments).toEqual([{ purpose: 'create' }]);

    // The returned token cannot buy anything any more, even at the very same price.
    const reuse = await postJson(
      `${renter.url}/v1/leases`,
      { ...createBody, seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe('token_spent');
  });

  for (const mode of ['answer cached by the mint (NUT-19)', 'mint without NUT-19: restore'] as const) {
    it(`recovers the lease when the swap answer is lost (${mode}), charging once`, async () => {
      const { wallet, proofs } = await fundedWallet(extMintUrl, 200);
      const { token, send, keep } = await tokenOf(wallet, extMintUrl, proofs, 130);
      proxy.dropSwapAnswers = 1;
      const lost = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
      expect(lost.status).toBe(503);
      expect(lost.body.error).toBe('mint_unavailable');
      expect(lost.headers.get('retry-after')).not.toBeNull();
      // The mint did swap: the payer's proofs are gone there, yet no lease was recorded.
      expect(await states(wallet, send)).toEqual(send.map(() => CheckStateEnum.SPENT));

      const restoring = mode === 'mint without NUT-19: restore';
      proxy.reorderSwaps = restoring ? 1 : 0;
      const restoresBefore = proxy.restores;
      let leaseId = '';
      try {
        const retry = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
        expect(retry.status).toBe(201);
        expect(proxy.reorderSwaps).toBe(0);
        // Without the mint's answer cache, the node learnt its signatures by NUT-09 restore.
        expect(proxy.restores > restoresBefore).toBe(restoring);
        expect(retry.body).toMatchObject({ state: 'running', paid: 130 });
        leaseId = String(retry.body.id);
        const other = await walletAt(extMintUrl);
        expect(sumOf(await other.receive(retry.body.change as string))).toBe(10);

        const replay = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
        expect(replay.status).toBe(200);
        expect(replay.body.id).toBe(retry.body.id);

        const stop = await postJson(
          `${renter.url}/v1/leases/${retry.body.id}`,
          undefined,
          { authorization: `Bearer ${retry.body.token}` },
          'DELETE',
        );
        expect(stop.status).toBe(200);
        expect(sumOf(await other.receive(stop.body.refund as string))).toBe(stop.body.refunded);
      } finally {
        proxy.reorderSwaps = 0;
      }
      // Charged once: one payment for that token, and the payer's other proofs untouched.
      const payments = await renter.node.db
        .selectFrom('payments')
        .select(['lease_id', 'amount', 'kept', 'change'])
        .where('mint_url', '=', extMintUrl)
        .where('lease_id', '=', leaseId)
        .execute();
      expect(payments).toEqual([{ lease_id: leaseId, amount: 130, kept: 120, change: 10 }]);
      expect(await states(wallet, keep)).toEqual(keep.map(() => CheckStateEnum.UNSPENT));
    });
  }
});
