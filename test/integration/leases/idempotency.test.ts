import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  allSpent,
  allUnspent,
  type LeaseTestNode,
  satOffer as offer,
  postJson,
  startLeaseNode,
  tokens,
} from '../../helpers/lease-node.js';
import { storedText } from '../../helpers/store-text.js';

/**
 * Only the payment that bought a lease may return its credential, its change or its refund
 * (API.md "Leases", ARCHITECTURE.md). An Idempotency-Key is bound to the payment and the body it
 * first came with; a payment is bound to the request it paid for. Everything else is
 * `409 idempotency_conflict` with no lease data, and the new token stays unspent at the mint.
 * Real node, real crun sandboxes, a real cashu-ts wallet checking proof states.
 */
let t: LeaseTestNode;

beforeAll(async () => {
  t = await startLeaseNode({ offers: [offer('small', 0.25, 60), offer('other', 0.25, 30)] }, undefined, {
    images: ['busybox', 'ghost'],
  });
});
afterEach(async () => {
  for (const s of await t.driver.list()) await t.driver.stop(s);
});
afterAll(async () => {
  await t?.close();
});

const leases = () => `${t.url}/v1/leases`;
const auth = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });
const small = { offer: 'small', seconds: 7200, image: 'busybox' }; // 120 sat
const newKey = () => `k-${randomBytes(8).toString('hex')}`;

/** A 409 idempotency_conflict that tells nothing about the lease the key or payment bought. */
function expectConflict(
  res: { status: number; body: Record<string, unknown>; headers: Headers },
  first?: Record<string, unknown>,
): void {
  expect(res.status).toBe(409);
  expect(Object.keys(res.body).sort()).toEqual(['error', 'message']);
  expect(res.body.error).toBe('idempotency_conflict');
  expect(res.headers.get('x-cashu')).toBeNull();
  if (first) {
    const text = JSON.stringify(res.body);
    for (const field of ['id', 'token', 'change', 'refund'] as const) {
      if (typeof first[field] === 'string') expect(text).not.toContain(first[field]);
    }
  }
}

describe('an Idempotency-Key is bound to its payment and body', () => {
  it('the key alone, with no payment, gets 409: no credential, no change', async () => {
    const { tokens: pool } = await tokens(t.mintUrl, 1, 128);
    const key = newKey();
    const first = await postJson(leases(), small, { 'x-cashu': pool[0]!.token, 'idempotency-key': key });
    expect(first.status).toBe(201);
    expect(typeof first.body.change).toBe('string'); // 128 paid for 120: change is due
    const alone = await postJson(leases(), small, { 'idempotency-key': key });
    expectConflict(alone, first.body);
    // Another body with the key alone: the same.
    expectConflict(
      await postJson(leases(), { ...small, offer: 'other' }, { 'idempotency-key': key }),
      first.body,
    );
  });

  it('the key with another payment (same body or another offer) gets 409; that token stays unspent', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 3, 128);
    const key = newKey();
    const first = await postJson(leases(), small, { 'x-cashu': pool[0]!.token, 'idempotency-key': key });
    expect(first.status).toBe(201);
    const sameBody = await postJson(leases(), small, { 'x-cashu': pool[1]!.token, 'idempotency-key': key });
    expectConflict(sameBody, first.body);
    const otherOffer = await postJson(
      leases(),
      { ...small, offer: 'other' },
      { 'x-cashu': pool[2]!.token, 'idempotency-key': key },
    );
    expectConflict(otherOffer, first.body);
    expect(await allUnspent(wallet, [...pool[1]!.send, ...pool[2]!.send])).toBe(true);
    // A malformed token with the bound key: also nothing.
    expectConflict(
      await postJson(leases(), small, { 'x-cashu': 'cashuBjunk', 'idempotency-key': key }),
      first.body,
    );
    // The refused tokens still buy leases of their own.
    const own = await postJson(leases(), small, { 'x-cashu': pool[1]!.token });
    expect(own.status).toBe(201);
    expect(own.body.id).not.toBe(first.body.id);
  });

  it('the key with its own payment but another body gets 409; same payment, key and body replay', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 1, 128);
    const key = newKey();
    const headers = { 'x-cashu': pool[0]!.token, 'idempotency-key': key };
    const first = await postJson(leases(), small, headers);
    expect(first.status).toBe(201);
    for (const body of [
      { ...small, seconds: 3600 },
      { ...small, command: ['sh'] },
      { ...small, env: { A: '1' } },
      { ...small, ports: [8080] },
    ]) {
      expectConflict(await postJson(leases(), body, headers), first.body);
    }
    // The same request again, keys of the body in another order included: the first answer.
    const replay = await postJson(leases(), { image: 'busybox', seconds: 7200, offer: 'small' }, headers);
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(first.body);
    expect(replay.headers.get('x-cashu')).toBe(first.body.change);
    expect(await allSpent(wallet, pool[0]!.send)).toBe(true);
  });

  it('a start that failed: only its own payment gets the refund again', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 2, 128);
    const key = newKey();
    const ghost = { ...small, image: 'ghost' };
    const first = await postJson(leases(), ghost, { 'x-cashu': pool[0]!.token, 'idempotency-key': key });
    expect(first.status).toBe(503);
    expect(typeof first.body.refund).toBe('string');
    const other = await postJson(leases(), ghost, { 'x-cashu': pool[1]!.token, 'idempotency-key': key });
    expectConflict(other, first.body);
    expectConflict(await postJson(leases(), ghost, { 'idempotency-key': key }), first.body);
    expect(await allUnspent(wallet, pool[1]!.send)).toBe(true);
    const again = await postJson(leases(), ghost, { 'x-cashu': pool[0]!.token, 'idempotency-key': key });
    expect(again.status).toBe(503);
    expect(again.body).toEqual(first.body);
  });

  it('while the key’s first request is still in flight, conflicting requests get 409 (or 402 before it)', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 8, 128);
    const key = newKey();
    const paid = pool.map((p, i) =>
      postJson(leases(), i % 2 ? small : { ...small, offer: 'other' }, {
        'x-cashu': p.token,
        'idempotency-key': key,
      }),
    );
    const unpaid = Array.from({ length: 4 }, () => postJson(leases(), small, { 'idempotency-key': key }));
    const answers = await Promise.all(paid);
    const bare = await Promise.all(unpaid);
    const winners = answers.filter((a) => a.status === 201);
    expect(winners).toHaveLength(1);
    const winner = winners[0]!;
    for (const [i, a] of answers.entries()) {
      if (a === winner) {
        expect(await allSpent(wallet, pool[i]!.send)).toBe(true);
        continue;
      }
      expectConflict(a, winner.body);
      expect(await allUnspent(wallet, pool[i]!.send)).toBe(true);
    }
    for (const b of bare) {
      // Before the key was bound it asked for payment; after, it was refused. Never the lease.
      expect([402, 409]).toContain(b.status);
      if (b.status === 409) expectConflict(b, winner.body);
      else expect(b.body.error).toBe('payment_required');
    }
    expect(new Set((await t.driver.list()).map((s) => s.leaseId))).toEqual(new Set([winner.body.id]));
  });
});

describe('an Idempotency-Key on an extension is bound to its payment too', () => {
  it('retries with the same key and other payments, at once and after, extend once; those tokens stay unspent', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 7, 128);
    const [buy, ...pays] = pool as [(typeof pool)[0], ...(typeof pool)[0][]];
    const lease = await postJson(leases(), small, { 'x-cashu': buy.token });
    expect(lease.status).toBe(201);
    const key = newKey();
    const extend = (token: string | undefined, seconds = 3600) =>
      postJson(
        `${leases()}/${lease.body.id}/extend`,
        { seconds },
        {
          'idempotency-key': key,
          ...(token ? { 'x-cashu': token } : {}),
        },
      );
    // Five payments under one key at once: one extension.
    const answers = await Promise.all(pays.slice(0, 5).map((p) => extend(p.token)));
    const winners = answers.filter((a) => a.status === 200);
    expect(winners).toHaveLength(1);
    const winner = winners[0]!;
    for (const [i, a] of answers.entries()) {
      if (a === winner) {
        expect(await allSpent(wallet, pays[i]!.send)).toBe(true);
        continue;
      }
      expectConflict(a, winner.body);
      expect(await allUnspent(wallet, pays[i]!.send)).toBe(true);
    }
    // Later: another payment, no payment, other seconds under the key: 409, nothing taken.
    expectConflict(await extend(pays[5]!.token), winner.body);
    expect(await allUnspent(wallet, pays[5]!.send)).toBe(true);
    expectConflict(await extend(undefined), winner.body);
    // The winning payment with its key replays, the same change.
    const winning = pays[answers.indexOf(winner)]!;
    const replay = await extend(winning.token);
    expect(replay.status).toBe(200);
    expect(replay.body.change).toBe(winner.body.change);
    // The key of an extension refuses a create with another payment; the lease moved once.
    expectConflict(
      await postJson(leases(), small, { 'x-cashu': pays[5]!.token, 'idempotency-key': key }),
      winner.body,
    );
    const now = await fetch(`${leases()}/${lease.body.id}`, { headers: auth(lease.body.token) });
    const expires = ((await now.json()) as { expires_at: string }).expires_at;
    expect(Date.parse(expires) - Date.parse(String(lease.body.expires_at))).toBe(3600_000);
  });
});

describe('a payment is bound to the request it paid for', () => {
  it('the same payment with another body gets 409; without a key or with a fresh key it replays', async () => {
    const { tokens: pool } = await tokens(t.mintUrl, 1, 128);
    const token = pool[0]!.token;
    const first = await postJson(leases(), small, { 'x-cashu': token });
    expect(first.status).toBe(201);
    expectConflict(await postJson(leases(), { ...small, offer: 'other' }, { 'x-cashu': token }), first.body);
    expectConflict(await postJson(leases(), { ...small, seconds: 3600 }, { 'x-cashu': token }), first.body);
    // The payment is what unlocks the replay: a key it never came with adds nothing, takes nothing.
    const fresh = await postJson(leases(), small, { 'x-cashu': token, 'idempotency-key': newKey() });
    expect(fresh.status).toBe(200);
    expect(fresh.body).toEqual(first.body);
  });

  it('one payment sent at once with two bodies: one lease; its own body replays, the other gets 409', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 1, 128);
    const token = pool[0]!.token;
    const other = { ...small, offer: 'other' };
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => postJson(leases(), i % 2 ? small : other, { 'x-cashu': token })),
    );
    const winner = answers.find((a) => a.status === 201);
    expect(winner).toBeDefined();
    const winnerOffer = winner!.body.offer;
    for (const [i, a] of answers.entries()) {
      if (a === winner) continue;
      const sameBody = (i % 2 ? 'small' : 'other') === winnerOffer;
      if (sameBody) {
        expect(a.status).toBe(200);
        expect(a.body).toEqual(winner!.body);
      } else {
        expectConflict(a, winner!.body);
      }
    }
    expect(await allSpent(wallet, pool[0]!.send)).toBe(true);
    expect((await t.driver.list()).map((s) => s.leaseId)).toEqual([winner!.body.id]);
  });

  it('a key bound to another payment is refused even with a payment that bought a lease', async () => {
    const { tokens: pool } = await tokens(t.mintUrl, 2, 128);
    const keyA = newKey();
    const a = await postJson(leases(), small, { 'x-cashu': pool[0]!.token, 'idempotency-key': keyA });
    const b = await postJson(leases(), small, { 'x-cashu': pool[1]!.token });
    expect([a.status, b.status]).toEqual([201, 201]);
    // B's payment with A's key: neither lease is shown.
    const mixed = await postJson(leases(), small, { 'x-cashu': pool[1]!.token, 'idempotency-key': keyA });
    expectConflict(mixed, a.body);
    expect(JSON.stringify(mixed.body)).not.toContain(String(b.body.token));
  });

  it('extensions: a payment replays only on its own lease with its own seconds', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 3, 128);
    const [payA, payB, payExt] = pool as [(typeof pool)[0], (typeof pool)[0], (typeof pool)[0]];
    const a = await postJson(leases(), small, { 'x-cashu': payA.token });
    const b = await postJson(leases(), small, { 'x-cashu': payB.token });
    expect([a.status, b.status]).toEqual([201, 201]);
    const extendA = (body: unknown, token: string, id = a.body.id) =>
      postJson(`${leases()}/${id}/extend`, body, { 'x-cashu': token });
    const ext = await extendA({ seconds: 3600 }, payExt.token);
    expect(ext.status).toBe(200);
    expect(typeof ext.body.change).toBe('string'); // 128 for 60
    // Its own replay: the same answer and change.
    const replay = await extendA({ seconds: 3600 }, payExt.token);
    expect(replay.status).toBe(200);
    expect(replay.body.change).toBe(ext.body.change);
    // The extension's payment on another lease, or with other seconds: nothing of lease A.
    const onB = await extendA({ seconds: 3600 }, payExt.token, b.body.id);
    expectConflict(onB, ext.body);
    expect(JSON.stringify(onB.body)).not.toContain(String(a.body.id));
    expectConflict(await extendA({ seconds: 7200 }, payExt.token), ext.body);
    // A create's payment on an extension, an extension's payment on a create.
    expectConflict(await extendA({ seconds: 3600 }, payA.token), a.body);
    expectConflict(await postJson(leases(), small, { 'x-cashu': payExt.token }), ext.body);
    // B was not extended, A only once.
    const getA = await fetch(`${leases()}/${a.body.id}`, { headers: auth(a.body.token) });
    const getB = await fetch(`${leases()}/${b.body.id}`, { headers: auth(b.body.token) });
    expect(((await getA.json()) as { expires_at: string }).expires_at).toBe(ext.body.expires_at);
    expect(((await getB.json()) as { expires_at: string }).expires_at).toBe(b.body.expires_at);
    expect(await allSpent(wallet, payExt.send)).toBe(true);
  });
});

describe('the other paths that show a credential, change or refund', () => {
  it('GET shows no credential or change; DELETE and its refund go only to the bearer of that lease', async () => {
    const { tokens: pool } = await tokens(t.mintUrl, 2, 128);
    const a = await postJson(leases(), small, { 'x-cashu': pool[0]!.token });
    const b = await postJson(leases(), small, { 'x-cashu': pool[1]!.token });
    const get = await postJson(`${leases()}/${a.body.id}`, undefined, auth(a.body.token), 'GET');
    expect(get.status).toBe(200);
    expect(get.body).not.toHaveProperty('token');
    expect(get.body).not.toHaveProperty('change');
    const stop = await postJson(`${leases()}/${a.body.id}`, undefined, auth(a.body.token), 'DELETE');
    expect(stop.status).toBe(200);
    expect(typeof stop.body.refund).toBe('string');
    for (const headers of [{}, auth(b.body.token), auth(`${String(a.body.token).slice(0, -2)}AA`)]) {
      for (const method of ['DELETE', 'GET']) {
        const res = await postJson(`${leases()}/${a.body.id}`, undefined, headers, method);
        expect(res.status).toBe(401);
        expect(Object.keys(res.body).sort()).toEqual(['error', 'message']);
      }
    }
    // The bearer gets the same answer again, never a second refund.
    const again = await postJson(`${leases()}/${a.body.id}`, undefined, auth(a.body.token), 'DELETE');
    expect(again.body).toEqual(stop.body);
  });

  it('the 402 challenge holds no lease data; the store keeps a digest of the body, never its env', async () => {
    const { tokens: pool } = await tokens(t.mintUrl, 1, 128);
    const secretValue = `s3cret-${randomBytes(12).toString('hex')}`;
    const body = { ...small, env: { API_TOKEN: secretValue } };
    const challenge = await postJson(leases(), body, {});
    expect(challenge.status).toBe(402);
    expect(Object.keys(challenge.body).sort()).toEqual([
      'amount',
      'error',
      'l402',
      'message',
      'mints',
      'unit',
    ]);
    // The L402 macaroon binds the offer, seconds and image, never the env.
    const macaroon = (challenge.body.l402 as { macaroon: string }).macaroon;
    expect(Buffer.from(macaroon, 'base64').includes(secretValue)).toBe(false);
    expect(JSON.stringify(challenge.body) + JSON.stringify([...challenge.headers])).not.toContain(
      secretValue,
    );
    const created = await postJson(leases(), body, {
      'x-cashu': pool[0]!.token,
      'idempotency-key': newKey(),
    });
    expect(created.status).toBe(201);
    const row = await t.node.db
      .selectFrom('payments')
      .select(['request_hash'])
      .where('lease_id', '=', String(created.body.id))
      .executeTakeFirstOrThrow();
    expect(row.request_hash).toMatch(/^[0-9a-f]{64}$/);
    const stored = await storedText(t.dataDir, t.node.db);
    expect(stored.length).toBeGreaterThan(0);
    expect(stored.includes(secretValue)).toBe(false);
  });
});
