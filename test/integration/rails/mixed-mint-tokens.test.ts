import { getEncodedToken, type Proof } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allSpent,
  allUnspent,
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  startMintNode,
  tokenOf,
} from '../../helpers/lease-node.js';

/**
 * A token whose proofs are not all of one accepted mint is `400 mint_not_accepted` (API.md), never
 * `invalid_token`, and every proof in it stays unspent wherever it lives: V4 tokens naming one mint
 * but holding another's proofs, V3 tokens with entries of several mints, in both directions
 * (this node's mint and a trusted one). V3 entries that all name the same mint are one payment.
 * Real nodes and mints, a real cashu-ts wallet per mint.
 */
let renter: LeaseTestNode;
let trusted: Awaited<ReturnType<typeof startMintNode>>;
let foreign: Awaited<ReturnType<typeof startMintNode>>;

beforeAll(async () => {
  trusted = await startMintNode();
  foreign = await startMintNode();
  renter = await startLeaseNode({ trustedMints: [trusted.mintUrl] });
});
afterAll(async () => {
  await renter?.close();
  await trusted?.close();
  await foreign?.close();
});

const body = { offer: 'small', seconds: 3600, image: 'busybox' }; // 60 sat

async function coins(mintUrl: string, amount: number) {
  const funded = await fundedWallet(mintUrl, amount + 64);
  const { send } = await tokenOf(funded.wallet, mintUrl, funded.proofs, amount);
  return { wallet: funded.wallet, send };
}

/** A V3 (`cashuA`) token with one entry per [mint, proofs] pair. */
function v3(entries: Array<[string, Proof[]]>): string {
  const token = {
    token: entries.map(([mint, proofs]) => ({
      mint,
      proofs: proofs.map((p) => ({
        id: p.id,
        amount: Number(p.amount.toBigInt()),
        secret: p.secret,
        C: p.C,
      })),
    })),
    unit: 'sat',
  };
  return `cashuA${Buffer.from(JSON.stringify(token)).toString('base64url')}`;
}

async function pay(token: string) {
  return postJson(`${renter.url}/v1/leases`, body, { 'x-cashu': token });
}

describe('tokens that mix mints', () => {
  it('V4 naming this node’s mint, holding its proofs and an untrusted mint’s: mint_not_accepted, all unspent', async () => {
    const own = await coins(renter.mintUrl, 40);
    const other = await coins(foreign.mintUrl, 40);
    const res = await pay(
      getEncodedToken({ mint: renter.mintUrl, unit: 'sat', proofs: [...own.send, ...other.send] }),
    );
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'mint_not_accepted', message: expect.any(String) });
    expect(await allUnspent(own.wallet, own.send)).toBe(true);
    expect(await allUnspent(other.wallet, other.send)).toBe(true);
    // Only the other mint's proofs, labelled as this node's: the same.
    const disguised = await pay(getEncodedToken({ mint: renter.mintUrl, unit: 'sat', proofs: other.send }));
    expect(disguised.status).toBe(400);
    expect(disguised.body.error).toBe('mint_not_accepted');
  });

  it('V4 naming a trusted mint, holding this node’s proofs too: mint_not_accepted, all unspent', async () => {
    const atTrusted = await coins(trusted.mintUrl, 40);
    const own = await coins(renter.mintUrl, 40);
    const res = await pay(
      getEncodedToken({ mint: trusted.mintUrl, unit: 'sat', proofs: [...atTrusted.send, ...own.send] }),
    );
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('mint_not_accepted');
    expect(await allUnspent(atTrusted.wallet, atTrusted.send)).toBe(true);
    expect(await allUnspent(own.wallet, own.send)).toBe(true);
  });

  it('V3 with entries of this node’s mint and an untrusted mint, or a trusted one: mint_not_accepted', async () => {
    const own = await coins(renter.mintUrl, 40);
    const other = await coins(foreign.mintUrl, 40);
    const atTrusted = await coins(trusted.mintUrl, 40);
    for (const token of [
      v3([
        [renter.mintUrl, own.send],
        [foreign.mintUrl, other.send],
      ]),
      v3([
        [foreign.mintUrl, other.send],
        [renter.mintUrl, own.send],
      ]),
      v3([
        [renter.mintUrl, own.send],
        [trusted.mintUrl, atTrusted.send],
      ]),
    ]) {
      const res = await pay(token);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: 'mint_not_accepted', message: expect.any(String) });
    }
    // A V3 entry naming this node's mint but holding the other mint's proofs.
    const single = await pay(v3([[renter.mintUrl, other.send]]));
    expect(single.status).toBe(400);
    expect(single.body.error).toBe('mint_not_accepted');
    expect(await allUnspent(own.wallet, own.send)).toBe(true);
    expect(await allUnspent(other.wallet, other.send)).toBe(true);
    expect(await allUnspent(atTrusted.wallet, atTrusted.send)).toBe(true);
  });

  it('V3 with several entries of one accepted mint is one payment, and replays as one', async () => {
    const a = await coins(renter.mintUrl, 32);
    const b = await fundedWallet(renter.mintUrl, 64);
    const part = await tokenOf(b.wallet, renter.mintUrl, b.proofs, 32);
    const token = v3([
      [renter.mintUrl, a.send],
      [`${renter.mintUrl}/`, part.send],
    ]);
    const res = await pay(token);
    expect(res.status).toBe(201);
    expect(res.body.paid).toBe(64);
    expect(await allSpent(a.wallet, [...a.send, ...part.send])).toBe(true);
    const replay = await pay(token);
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(res.body);
    await postJson(
      `${renter.url}/v1/leases/${res.body.id}`,
      undefined,
      { authorization: `Bearer ${res.body.token}` },
      'DELETE',
    );
  });
});
