import { randomBytes } from 'node:crypto';
import { getDecodedToken, getEncodedToken, type Proof, Wallet } from '@cashu/cashu-ts';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { bytesToHex, publicKeyOf } from '../../../src/mint/crypto/index.js';
import {
  allSpent,
  allUnspent,
  expectBalanced,
  fundedWallet,
  type LeaseTestNode,
  ledgerOf,
  satOffer as offer,
  postJson,
  startLeaseNode,
  startMintNode,
  statesOf,
  sumOf,
  tokenOf,
  tokens,
} from '../../helpers/lease-node.js';

/**
 * The money rules of ARCHITECTURE.md, each a test against a real node: rejections take nothing,
 * a payment ends in a lease or a refund, replays and races never charge twice, extend and stop
 * move exactly the priced amounts, and the books of the lease service and the mint agree.
 *
 * The node's clock is a manual one (starting now, moving only when told), so refunds can be
 * checked to the sat; leases are long enough that the sandboxes' own real-time deadlines never hit.
 */
const OPERATOR = 'operator-token-for-money-tests-012';
let t: LeaseTestNode;
let now = Date.now();
let foreign: Awaited<ReturnType<typeof startMintNode>>;
/** What the node must have kept and refunded, tallied from the answers it gave. */
const expected = { received: 0, refunded: 0 };

beforeAll(async () => {
  t = await startLeaseNode(
    {
      operatorToken: OPERATOR,
      // 8 vCPUs of capacity on this 2-core host (4× overcommit): 'pair' fits 4 times, 'huge' never.
      offers: [offer('small', 1, 60), offer('odd', 0.5, 7), offer('pair', 2, 60), offer('huge', 256, 60)],
    },
    undefined,
    { clock: () => new Date(now), images: ['busybox', 'ghost'] },
  );
  foreign = await startMintNode();
});
// A failed test must not leave sandboxes holding capacity for the next one.
afterEach(async () => {
  for (const s of await t.driver.list()) await t.driver.stop(s);
});
afterAll(async () => {
  await t?.close();
  await foreign?.close();
});

const leases = () => `${t.url}/v1/leases`;
const auth = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });
const small = { offer: 'small', seconds: 7200, image: 'busybox' };

async function stopLease(lease: Record<string, unknown>): Promise<number> {
  const res = await postJson(`${leases()}/${lease.id}`, undefined, auth(lease.token), 'DELETE');
  expect(res.status).toBe(200);
  expected.refunded += res.body.refunded as number;
  return res.body.refunded as number;
}

async function storeCounts(): Promise<{ leases: number; payments: number }> {
  const l = await t.node.db
    .selectFrom('leases')
    .select(sql<number>`count(*)`.as('n'))
    .executeTakeFirstOrThrow();
  const p = await t.node.db
    .selectFrom('payments')
    .select(sql<number>`count(*)`.as('n'))
    .executeTakeFirstOrThrow();
  return { leases: Number(l.n), payments: Number(p.n) };
}

describe('rule 1: a rejected request takes no money', () => {
  it('leaves the token unspent for every kind of rejection', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 3, 128);
    const [good, spare, last] = pool as [(typeof pool)[0], (typeof pool)[0], (typeof pool)[0]];
    const before = await storeCounts();
    const booksBefore = await ledgerOf(t.url, OPERATOR);

    const cases: Array<{ name: string; body: unknown; token: string; status: number; error: string }> = [
      {
        name: 'missing image',
        body: { offer: 'small', seconds: 7200 },
        token: good.token,
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'extra field',
        body: { ...small, gpu: true },
        token: good.token,
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'seconds as string',
        body: { ...small, seconds: '7200' },
        token: good.token,
        status: 400,
        error: 'invalid_request',
      },
      { name: 'body is an array', body: [small], token: good.token, status: 400, error: 'invalid_request' },
      {
        name: 'unknown offer',
        body: { ...small, offer: 'gigantic' },
        token: good.token,
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'unknown image',
        body: { ...small, image: 'ubuntu' },
        token: good.token,
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'seconds below min',
        body: { ...small, seconds: 59 },
        token: good.token,
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'seconds above max',
        body: { ...small, seconds: 30 * 24 * 3600 + 1 },
        token: good.token,
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'bad env name',
        body: { ...small, env: { 'A-B': 'x' } },
        token: good.token,
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'duplicate ports',
        body: { ...small, ports: [80, 80] },
        token: good.token,
        status: 400,
        error: 'invalid_request',
      },
      {
        name: 'truncated token',
        body: small,
        token: good.token.slice(0, -20),
        status: 400,
        error: 'invalid_token',
      },
      {
        name: 'token with junk appended',
        body: small,
        token: `${good.token}!!`,
        status: 400,
        error: 'invalid_token',
      },
      { name: 'not a token', body: small, token: 'hello', status: 400, error: 'invalid_token' },
      {
        name: 'cashuB garbage',
        body: small,
        token: 'cashuBo2FteCJodHRwOi8vZXZpbA',
        status: 400,
        error: 'invalid_token',
      },
      {
        name: 'too small',
        body: { ...small, seconds: 7200 * 2 },
        token: good.token,
        status: 400,
        error: 'insufficient_amount',
      },
      {
        name: 'no capacity',
        body: { ...small, offer: 'huge' },
        token: good.token,
        status: 503,
        error: 'no_capacity',
      },
    ];
    for (const c of cases) {
      const res = await postJson(leases(), c.body, { 'x-cashu': c.token });
      expect(res.status, c.name).toBe(c.status);
      expect(res.body, c.name).toMatchObject({ error: c.error, message: expect.any(String) });
      if (c.error === 'no_capacity') expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      if (c.error === 'insufficient_amount') expect(res.body).toMatchObject({ amount: 240, unit: 'sat' });
      expect(await allUnspent(wallet, good.send), c.name).toBe(true);
    }

    // The same ecash relabelled: another unit, or proofs split across two tokens' worth of junk.
    const usd = getEncodedToken({ mint: t.mintUrl, unit: 'usd', proofs: spare.send });
    const wrongUnit = await postJson(leases(), small, { 'x-cashu': usd });
    expect(wrongUnit.status).toBe(400);
    expect(wrongUnit.body).toMatchObject({ error: 'unit_mismatch' });
    const tampered = getEncodedToken({
      mint: t.mintUrl,
      unit: 'sat',
      proofs: spare.send.map((p) => ({ ...p, C: good.send[0]?.C ?? p.C })),
    });
    const badSig = await postJson(leases(), small, { 'x-cashu': tampered });
    expect(badSig.status).toBe(400);
    expect(badSig.body).toMatchObject({ error: 'invalid_token' });
    // Two headers at once are refused, not guessed at.
    const twice = await fetch(leases(), {
      method: 'POST',
      headers: [
        ['content-type', 'application/json'],
        ['x-cashu', spare.token],
        ['x-cashu', last.token],
      ],
      body: JSON.stringify(small),
    });
    expect(twice.status).toBe(400);
    expect(await allUnspent(wallet, [...spare.send, ...last.send])).toBe(true);

    // A real token of an untrusted mint: mint_not_accepted, unspent at that mint. Relabelled as
    // ours, its proofs belong to a keyset this mint does not know: still mint_not_accepted.
    const other = await fundedWallet(foreign.mintUrl, 200);
    const foreignToken = await tokenOf(other.wallet, foreign.mintUrl, other.proofs, 128);
    const untrusted = await postJson(leases(), small, { 'x-cashu': foreignToken.token });
    expect(untrusted.status).toBe(400);
    expect(untrusted.body).toMatchObject({ error: 'mint_not_accepted' });
    const disguised = getEncodedToken({ mint: t.mintUrl, unit: 'sat', proofs: foreignToken.send });
    const disguisedRes = await postJson(leases(), small, { 'x-cashu': disguised });
    expect(disguisedRes.status).toBe(400);
    expect(disguisedRes.body).toMatchObject({ error: 'mint_not_accepted' });
    expect(await allUnspent(other.wallet, foreignToken.send)).toBe(true);

    // P2PK-locked to someone's key, sent without a signature: refused, still unspent.
    const pubkey = bytesToHex(publicKeyOf(new Uint8Array(randomBytes(32))));
    const mine = await fundedWallet(t.mintUrl, 128);
    const locked = await mine.wallet.ops.send(128, mine.proofs).asP2PK({ pubkey }).run();
    const lockedToken = getEncodedToken({ mint: t.mintUrl, unit: 'sat', proofs: locked.send });
    const lockedRes = await postJson(leases(), small, { 'x-cashu': lockedToken });
    expect(lockedRes.status).toBe(400);
    expect(lockedRes.body).toMatchObject({ error: 'invalid_token' });
    expect(await allUnspent(mine.wallet, locked.send)).toBe(true);

    // Nothing was recorded, no capacity stays reserved.
    expect(await storeCounts()).toEqual(before);
    const booksAfter = await ledgerOf(t.url, OPERATOR);
    // The lease books did not move (the mint's did: the test's wallets minted and split ecash).
    expect({ ...booksAfter, mint: undefined }).toEqual({ ...booksBefore, mint: undefined });
    const offers = (await (await fetch(`${t.url}/v1/offers`)).json()) as {
      offers: Array<{ id: string; available: number }>;
    };
    expect(offers.offers.find((o) => o.id === 'pair')?.available).toBe(4);

    // The tokens still buy a lease afterwards: nothing about them was burnt.
    const ok = await postJson(leases(), small, { 'x-cashu': good.token });
    expect(ok.status).toBe(201);
    expected.received += 120;
    await stopLease(ok.body);
  });

  it('answers 503 no_capacity with Retry-After while the payment checks are saturated, takes nothing, and the same token pays once after', async () => {
    // The mint's curve threads (src/mint/curve-pool.ts) hold more work than they take: made so by
    // counting work that is not there, so that the refusal does not hang on timing.
    const pool = (t.node.mint as unknown as { curvePool: { queuedProofs: number } }).curvePool;
    const { wallet, tokens: pool1 } = await tokens(t.mintUrl, 1, 128);
    const paid = pool1[0]!;
    const before = await storeCounts();
    const booksBefore = await ledgerOf(t.url, OPERATOR);
    const idem = { 'x-cashu': paid.token, 'idempotency-key': `busy-${randomBytes(8).toString('hex')}` };
    pool.queuedProofs += 1_000_000_000;
    let busy: Awaited<ReturnType<typeof postJson>>;
    try {
      busy = await postJson(leases(), small, idem);
    } finally {
      pool.queuedProofs -= 1_000_000_000;
    }
    expect(busy.status).toBe(503);
    expect(busy.body).toMatchObject({ error: 'no_capacity', message: expect.any(String) });
    expect(busy.headers.get('retry-after')).toBe('1');
    expect(await allUnspent(wallet, paid.send)).toBe(true);
    expect(await storeCounts()).toEqual(before);
    expect({ ...(await ledgerOf(t.url, OPERATOR)), mint: undefined }).toEqual({
      ...booksBefore,
      mint: undefined,
    });

    // Retried as told, with the same key: one lease, paid once, its change (8) given back.
    const ok = await postJson(leases(), small, idem);
    expect(ok.status).toBe(201);
    expect(await allSpent(wallet, paid.send)).toBe(true);
    // The change was signed ahead on the curve threads: a good token of 8.
    expect(sumOf(await wallet.receive(String(ok.body.change)))).toBe(8);
    const again = await postJson(leases(), small, idem);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(ok.body.id);
    expect(await storeCounts()).toEqual({ leases: before.leases + 1, payments: before.payments + 1 });
    expected.received += 120;
    await stopLease(ok.body);
  });

  it('an extension that is refused leaves the token unspent', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 3, 64);
    const lease = await newLease();
    const [tooSmall, okay, late] = pool as [(typeof pool)[0], (typeof pool)[0], (typeof pool)[0]];
    const small5h = await postJson(
      `${leases()}/${lease.id}/extend`,
      { seconds: 5 * 3600 },
      { 'x-cashu': tooSmall.token },
    );
    expect(small5h.status).toBe(400);
    expect(small5h.body).toMatchObject({ error: 'insufficient_amount', amount: 300 });
    const outOfRange = await postJson(
      `${leases()}/${lease.id}/extend`,
      { seconds: 10 },
      { 'x-cashu': tooSmall.token },
    );
    expect(outOfRange.status).toBe(400);
    const badBody = await postJson(
      `${leases()}/${lease.id}/extend`,
      { seconds: 3600, x: 1 },
      { 'x-cashu': tooSmall.token },
    );
    expect(badBody.status).toBe(400);
    const unknown = await postJson(
      `${leases()}/lse_00000000000000000000000000/extend`,
      { seconds: 3600 },
      { 'x-cashu': tooSmall.token },
    );
    expect(unknown.status).toBe(404);
    expect(await allUnspent(wallet, tooSmall.send)).toBe(true);
    // Paying an extension with the token that paid the lease is not a second payment.
    const reused = await postJson(
      `${leases()}/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': lease.paidWith },
    );
    expect(reused.status).toBe(409);
    expect(reused.body).toEqual({ error: 'idempotency_conflict', message: expect.any(String) });

    const ext = await postJson(
      `${leases()}/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': okay.token },
    );
    expect(ext.status).toBe(200);
    expected.received += 60;
    // The extension's token used for a create is not a create payment either.
    const asCreate = await postJson(leases(), small, { 'x-cashu': okay.token });
    expect(asCreate.status).toBe(409);
    expect(asCreate.body).toEqual({ error: 'idempotency_conflict', message: expect.any(String) });
    await stopLease(lease);
    const ended = await postJson(
      `${leases()}/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': late.token },
    );
    expect(ended.status).toBe(409);
    expect(await allUnspent(wallet, [...tooSmall.send, ...late.send])).toBe(true);
  });

  it('a lease whose sandbox died: an extension takes nothing, exec or extend end it with its time refunded', async () => {
    const lease = await newLease();
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 1, 64);
    // The sandbox dies under the running node (killed from outside, host trouble).
    await t.driver.stop({ leaseId: lease.id });
    const ext = await postJson(
      `${leases()}/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': pool[0]!.token },
    );
    expect(ext.status).toBe(409);
    expect(ext.body).toMatchObject({ error: 'lease_not_running' });
    expect(await allUnspent(wallet, pool[0]!.send)).toBe(true);
    const status = await fetch(`${leases()}/${lease.id}`, { headers: auth(lease.token) });
    expect(((await status.json()) as { state: string }).state).toBe('stopped');
    // The holder gets the unused time back (all of it: the node's clock stood still).
    expect(await stopLease(lease)).toBe(120);

    // The holder finds out first, by exec: same outcome, the lease is not charged for dead time.
    const other = await newLease();
    await t.driver.stop({ leaseId: other.id });
    const exec = await postJson(`${leases()}/${other.id}/exec`, { command: ['true'] }, auth(other.token));
    expect(exec.status).toBe(409);
    const otherStatus = await fetch(`${leases()}/${other.id}`, { headers: auth(other.token) });
    expect(((await otherStatus.json()) as { state: string }).state).toBe('stopped');
    expect(await stopLease(other)).toBe(120);
  });

  it('a token spent elsewhere gets token_spent and takes nothing', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 1, 128);
    const spent = pool[0]!;
    const thief = new Wallet(t.mintUrl, { unit: 'sat' });
    await thief.loadMint();
    await thief.receive(spent.token);
    const before = await storeCounts();
    const res = await postJson(leases(), small, { 'x-cashu': spent.token });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'token_spent' });
    expect(await storeCounts()).toEqual(before);
    expect(await allSpent(wallet, spent.send)).toBe(true);
  });
});

describe('rules 2 and 3: one payment, one lease', () => {
  it('replaying a paid request returns the same lease and charges nothing more', async () => {
    const lease = await newLease();
    const books = await ledgerOf(t.url, OPERATOR);
    const counts = await storeCounts();
    for (let i = 0; i < 3; i++) {
      const replay = await postJson(leases(), small, { 'x-cashu': lease.paidWith });
      expect(replay.status).toBe(200);
      expect(replay.body).toEqual(lease.answer);
    }
    expect(await ledgerOf(t.url, OPERATOR)).toEqual(books);
    expect(await storeCounts()).toEqual(counts);
    await stopLease(lease);
  });

  it('the same Idempotency-Key with another token, or alone, is a conflict; the second token stays unspent', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 3, 128);
    const key = `idem-${randomBytes(8).toString('hex')}`;
    const first = await postJson(leases(), small, { 'x-cashu': pool[0]!.token, 'idempotency-key': key });
    expect(first.status).toBe(201);
    expected.received += 120;
    const second = await postJson(leases(), small, { 'x-cashu': pool[1]!.token, 'idempotency-key': key });
    expect(second.status).toBe(409);
    expect(second.body).toEqual({ error: 'idempotency_conflict', message: expect.any(String) });
    // Without any payment header, the key alone unlocks nothing either.
    const third = await postJson(leases(), small, { 'idempotency-key': key });
    expect(third.status).toBe(409);
    expect(third.body).toEqual({ error: 'idempotency_conflict', message: expect.any(String) });
    // The payment that bought it, with its key, replays.
    const replay = await postJson(leases(), small, { 'x-cashu': pool[0]!.token, 'idempotency-key': key });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(first.body);
    expect(await allSpent(wallet, pool[0]!.send)).toBe(true);
    expect(await allUnspent(wallet, [...pool[1]!.send, ...pool[2]!.send])).toBe(true);
    const junk = await postJson(leases(), small, {
      'x-cashu': pool[2]!.token,
      'idempotency-key': 'bad key\t',
    });
    expect(junk.status).toBe(400);
    expect(await allUnspent(wallet, pool[2]!.send)).toBe(true);
    await stopLease(first.body);
  });

  it('an Idempotency-Key binds only to a request that paid: after a rejection it is still free', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 3, 128);
    const key = `free-${randomBytes(8).toString('hex')}`;
    const rejected = await postJson(
      leases(),
      { ...small, seconds: 14_400 },
      { 'x-cashu': pool[0]!.token, 'idempotency-key': key },
    );
    expect(rejected.status).toBe(400);
    const created = await postJson(leases(), small, { 'x-cashu': pool[1]!.token, 'idempotency-key': key });
    expect(created.status).toBe(201);
    expected.received += 120;
    expect(await allUnspent(wallet, pool[0]!.send)).toBe(true);
    await stopLease(created.body);
  });

  it('an Idempotency-Key whose start failed replays the refund to its payment only; a second token is refused unspent', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 2, 128);
    const key = `failed-${randomBytes(8).toString('hex')}`;
    const ghost = { ...small, image: 'ghost' };
    const first = await postJson(leases(), ghost, { 'x-cashu': pool[0]!.token, 'idempotency-key': key });
    expect(first.status).toBe(503);
    expected.received += 120;
    expected.refunded += 120;
    const second = await postJson(leases(), ghost, { 'x-cashu': pool[1]!.token, 'idempotency-key': key });
    expect(second.status).toBe(409);
    expect(second.body).toEqual({ error: 'idempotency_conflict', message: expect.any(String) });
    const replay = await postJson(leases(), ghost, { 'x-cashu': pool[0]!.token, 'idempotency-key': key });
    expect(replay.status).toBe(503);
    expect(replay.body).toEqual(first.body);
    expect(await allSpent(wallet, pool[0]!.send)).toBe(true);
    expect(await allUnspent(wallet, pool[1]!.send)).toBe(true);
  });

  it('50 concurrent requests with one token create exactly one lease', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 1, 128);
    const before = await storeCounts();
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => postJson(leases(), small, { 'x-cashu': pool[0]!.token })),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(49);
    const ids = new Set(answers.map((a) => a.body.id));
    expect(ids.size).toBe(1);
    for (const a of answers) expect({ ...a.body }).toEqual(answers[0]!.body);
    expect(await storeCounts()).toEqual({ leases: before.leases + 1, payments: before.payments + 1 });
    expect((await t.driver.list()).filter((s) => ids.has(s.leaseId))).toHaveLength(1);
    expect(await allSpent(wallet, pool[0]!.send)).toBe(true);
    expected.received += 120;
    await stopLease(answers[0]!.body);
  });

  it('50 concurrent requests with one Idempotency-Key and 50 tokens: one lease, one token taken, 49 conflicts', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 50, 128);
    const before = await storeCounts();
    const key = `race-${randomBytes(8).toString('hex')}`;
    const answers = await Promise.all(
      pool.map((p) => postJson(leases(), small, { 'x-cashu': p.token, 'idempotency-key': key })),
    );
    expect(answers.map((a) => a.status).sort((a, b) => a - b)).toEqual([201, ...Array<number>(49).fill(409)]);
    for (const a of answers) if (a.status === 409) expect(a.body.error).toBe('idempotency_conflict');
    const winner = answers.find((a) => a.status === 201)!;
    expect(await storeCounts()).toEqual({ leases: before.leases + 1, payments: before.payments + 1 });
    const spent: typeof pool = [];
    for (const p of pool) if (await allSpent(wallet, p.send)) spent.push(p);
    expect(spent).toHaveLength(1);
    const unspent = pool.filter((p) => !spent.includes(p));
    expect(
      await allUnspent(
        wallet,
        unspent.flatMap((p) => p.send),
      ),
    ).toBe(true);
    expected.received += 120;
    await stopLease(winner.body);
  });

  it('50 concurrent requests with 50 tokens beyond capacity: each a lease or a clean no_capacity, no token lost', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 50, 128);
    const pair = { offer: 'pair', seconds: 7200, image: 'busybox' };
    const answers = await Promise.all(pool.map((p) => postJson(leases(), pair, { 'x-cashu': p.token })));
    const created = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status !== 201);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(created.length).toBeLessThanOrEqual(4);
    for (const r of refused) {
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ error: 'no_capacity' });
    }
    for (let i = 0; i < pool.length; i++) {
      const states = await statesOf(wallet, pool[i]!.send);
      const want = answers[i]!.status === 201 ? 'SPENT' : 'UNSPENT';
      expect(
        states.every((s) => s === want),
        `token ${i}: ${answers[i]!.status}`,
      ).toBe(true);
    }
    const running = new Set((await t.driver.list()).map((s) => s.leaseId));
    expect(new Set(created.map((c) => String(c.body.id)))).toEqual(running);
    // Full up, a paid request still replays: the lease is found before any capacity is needed.
    const firstCreated = answers.findIndex((a) => a.status === 201);
    const replay = await postJson(leases(), pair, { 'x-cashu': pool[firstCreated]!.token });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(answers[firstCreated]!.body);
    expected.received += 120 * created.length;
    for (const c of created) await stopLease(c.body);
    expect(await t.driver.list()).toEqual([]);
  });
});

describe('races between paying and ending', () => {
  it('extensions racing a stop: each is taken and refunded in full, or refused and left unspent', async () => {
    const lease = await newLease();
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 12, 64);
    const extend = (token: string) =>
      postJson(`${leases()}/${lease.id}/extend`, { seconds: 3600 }, { 'x-cashu': token });
    const stop = () => postJson(`${leases()}/${lease.id}`, undefined, auth(lease.token), 'DELETE');
    const half = pool.slice(0, 6).map((p) => extend(p.token));
    const stopped = stop();
    const rest = pool.slice(6).map((p) => extend(p.token));
    const extensions = await Promise.all([...half, ...rest]);
    const stopAnswer = await stopped;
    // A running lease is stopped on the first DELETE, however many payments race it.
    expect(stopAnswer.status, JSON.stringify(stopAnswer.body)).toBe(200);
    let taken = 0;
    for (const [i, e] of extensions.entries()) {
      const states = await statesOf(wallet, pool[i]!.send);
      if (e.status === 200) {
        taken++;
        expect(states.every((s) => s === 'SPENT')).toBe(true);
      } else {
        expect(e.status, JSON.stringify(e.body)).toBe(409);
        expect(states.every((s) => s === 'UNSPENT')).toBe(true);
      }
    }
    // No time passed on the node's clock: every sat held for this lease comes back.
    expect(stopAnswer.body.refunded).toBe(120 + 60 * taken);
    expect((await stop()).body).toEqual(stopAnswer.body);
    expected.received += 60 * taken;
    expected.refunded += stopAnswer.body.refunded as number;
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR))).toEqual([]);
  });
});

describe('rule 4: money moves exactly as priced, and the books balance', () => {
  it('create, extend and stop move exactly the quoted amounts', async () => {
    // small: 60 sat/h. 7200 s cost 120, paid with 128 → change 8.
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 1, 128);
    const ext = await tokens(t.mintUrl, 1, 64);
    const books0 = await ledgerOf(t.url, OPERATOR);
    const created = await postJson(leases(), small, { 'x-cashu': pool[0]!.token });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ paid: 128 });
    expect(sumOf(await receive(created.body.change))).toBe(8);
    const books1 = await ledgerOf(t.url, OPERATOR);
    expect(books1.received - books0.received).toBe(120);
    expect(books1.held - books0.held).toBe(120);
    // Extension by 3600 s: 60 sat, paid with 64 → change 4; the deadline moves by exactly 3600 s.
    const extended = await postJson(
      `${leases()}/${created.body.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': ext.tokens[0]!.token },
    );
    expect(extended.status).toBe(200);
    expect(Date.parse(String(extended.body.expires_at))).toBe(now + 10_800_000);
    expect(extended.body.paid).toBe(192);
    expect(sumOf(await receive(extended.body.change))).toBe(4);
    const books2 = await ledgerOf(t.url, OPERATOR);
    expect(books2.received - books1.received).toBe(60);
    expect(books2.held - books1.held).toBe(60);
    // 1234.5 s later: 9565.5 s unused → 9565 whole seconds → floor(60 × 9565 / 3600) = 159.
    now += 1_234_500;
    const refunded = await stopLease(created.body);
    expect(refunded).toBe(159);
    const books3 = await ledgerOf(t.url, OPERATOR);
    expect(books3.refunded - books2.refunded).toBe(159);
    expect(books3.charged - books2.charged).toBe(180 - 159);
    expect(books3.held - books0.held).toBe(0);
    expected.received += 180;
    expect(await allSpent(wallet, pool[0]!.send)).toBe(true);

    // odd: 7 sat/h. 1000 s → ceil(7000/3600) = 2; +5000 s → ceil(35000/3600) = 10; stopped 0.9 s
    // into it: 5999.1 s unused → floor(7 × 5999 / 3600) = 11.
    const { tokens: oddPool } = await tokens(t.mintUrl, 2, 16);
    const odd = await postJson(
      leases(),
      { offer: 'odd', seconds: 1000, image: 'busybox' },
      { 'x-cashu': oddPool[0]!.token },
    );
    expect(odd.status).toBe(201);
    expect(sumOf(await receive(odd.body.change))).toBe(14);
    const oddExt = await postJson(
      `${leases()}/${odd.body.id}/extend`,
      { seconds: 5000 },
      { 'x-cashu': oddPool[1]!.token },
    );
    expect(oddExt.status).toBe(200);
    expect(sumOf(await receive(oddExt.body.change))).toBe(6);
    now += 900;
    expect(await stopLease(odd.body)).toBe(11);
    expected.received += 12;
  });

  it('the ledger balances and matches the mint after a mixed workload, including a melt', async () => {
    // One lease left running (held), one that expires (charged in full), one failed start (refunded).
    const running = await newLease();
    const { wallet: failWallet, tokens: failPool } = await tokens(t.mintUrl, 1, 128);
    const failed = await postJson(leases(), { ...small, image: 'ghost' }, { 'x-cashu': failPool[0]!.token });
    expect(failed.status).toBe(503);
    expect(failed.body).toMatchObject({ error: 'start_failed', refunded: 128 });
    expect(await allSpent(failWallet, failPool[0]!.send)).toBe(true);
    expect(sumOf(await receive(failed.body.refund))).toBe(128);
    expected.received += 120;
    expected.refunded += 120;
    const expiring = await newLease({ ...small, seconds: 600 });
    now += 600_000;
    // The reaper polls at least every 200 ms; wait until it has ended the lease.
    for (let i = 0; i < 400; i++) {
      const res = await fetch(`${leases()}/${expiring.id}`, { headers: auth(expiring.token) });
      if (((await res.json()) as { state: string }).state === 'expired') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const gone = (await (
      await fetch(`${leases()}/${expiring.id}`, { headers: auth(expiring.token) })
    ).json()) as {
      state: string;
    };
    expect(gone.state).toBe('expired');

    // Ecash leaves the mint over Lightning: a melt to someone else's invoice.
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 100);
    const invoice = (await new FakeLightningBackend().createInvoice(Amount.of(30), 'coffee')).bolt11;
    const quote = await wallet.createMeltQuoteBolt11(invoice);
    const selected = await wallet.send(quote.amount.add(quote.fee_reserve), proofs, { includeFees: true });
    const melted = await wallet.meltProofsBolt11(quote, selected.send);
    expect(melted.quote.state).toBe('PAID');

    const books = await ledgerOf(t.url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
    expect(books.received).toBe(expected.received);
    expect(books.refunded).toBe(expected.refunded);
    expect(books.held).toBe(120);
    expect(books.leases.running).toBe(1);
    expect(books.leases.expired).toBe(1);
    expect(books.leases.failed).toBe(2);
    expect(books.mint.lightning_out).toBeGreaterThanOrEqual(30);
    await stopLease(running);
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR))).toEqual([]);
  });
});

async function newLease(
  body: Record<string, unknown> = small,
): Promise<
  { id: string; token: string; paidWith: string; answer: Record<string, unknown> } & Record<string, unknown>
> {
  const { tokens: pool } = await tokens(t.mintUrl, 1, 128);
  const res = await postJson(leases(), body, { 'x-cashu': pool[0]!.token });
  expect(res.status).toBe(201);
  expected.received += res.body.paid === 128 ? 128 - (await changeOf(res.body)) : 0;
  return {
    ...res.body,
    id: String(res.body.id),
    token: String(res.body.token),
    paidWith: pool[0]!.token,
    answer: res.body,
  };
}

async function changeOf(body: Record<string, unknown>): Promise<number> {
  if (body.change === null) return 0;
  const w = new Wallet(t.mintUrl, { unit: 'sat' });
  await w.loadMint();
  return sumOf(
    getDecodedToken(
      String(body.change),
      w.keyChain.getKeysets().map((k) => k.id),
    ).proofs,
  );
}

async function receive(token: unknown): Promise<Proof[]> {
  const w = new Wallet(t.mintUrl, { unit: 'sat' });
  await w.loadMint();
  return w.receive(String(token));
}
