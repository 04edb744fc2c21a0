import { decodePaymentRequest, getDecodedToken, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  allSpent,
  allUnspent,
  expectBalanced,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  startLeaseNode,
  sumOf,
  tokens,
} from '../../helpers/lease-node.js';

/**
 * Every route and status code of API.md over real HTTP: a node in this process with real crun
 * sandboxes, its own mint, and a cashu-ts wallet paying. 'ghost' is an image the node offers but
 * whose files are missing, so a paid start fails for real inside the driver.
 */
const OPERATOR = 'operator-token-for-route-tests-0123';
let t: LeaseTestNode;
let wallet: Wallet;
let pool: Array<{ token: string; send: import('@cashu/cashu-ts').Proof[] }>;

beforeAll(async () => {
  t = await startLeaseNode({ operatorToken: OPERATOR }, undefined, { images: ['busybox', 'ghost'] });
  const funded = await tokens(t.mintUrl, 12, 128);
  wallet = funded.wallet;
  pool = funded.tokens;
});
afterAll(async () => {
  await t?.close();
});

function nextToken() {
  const next = pool.shift();
  if (!next) throw new Error('test ran out of tokens');
  return next;
}

const auth = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${t.url}${path}`, { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text };
}

async function receiver(): Promise<Wallet> {
  const w = new Wallet(t.mintUrl, { unit: 'sat' });
  await w.loadMint();
  return w;
}

describe('service routes', () => {
  it('GET /healthz and GET /metrics', async () => {
    const health = await get('/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toEqual({ ok: true });
    const metrics = await get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(metrics.text).toContain('alacarte_leases');
  });

  it('GET /v1/offers lists at least three offers, their availability, images and mints', async () => {
    const res = await get('/v1/offers');
    expect(res.status).toBe(200);
    const body = JSON.parse(res.text) as {
      offers: Array<Record<string, unknown>>;
      images: string[];
      payment: { cashu: { mints: string[]; unit: string } };
    };
    expect(body.offers.length).toBeGreaterThanOrEqual(3);
    for (const o of body.offers) {
      expect(o).toMatchObject({
        id: expect.any(String),
        vcpu: expect.any(Number),
        memory_mib: expect.any(Number),
        pids: expect.any(Number),
        disk_mib: expect.any(Number),
        price: { amount_per_hour: expect.any(Number), unit: 'sat' },
        min_seconds: expect.any(Number),
        max_seconds: expect.any(Number),
      });
      expect(['none', 'egress']).toContain(o.network);
      expect(o.bandwidth_mbit === undefined).toBe(o.network === 'none');
      expect(Number.isInteger(o.available)).toBe(true);
      expect(o.available as number).toBeGreaterThan(0);
    }
    // The defaults ship an egress offer beside loopback-only ones.
    expect(body.offers.find((o) => o.id === 'online')).toMatchObject({
      network: 'egress',
      bandwidth_mbit: 50,
    });
    expect(body.offers.find((o) => o.id === 'small')).toMatchObject({
      network: 'none',
      price: { amount_per_hour: 60, unit: 'sat' },
      min_seconds: 60,
      max_seconds: 2_592_000,
    });
    expect(body.images).toEqual(['busybox', 'ghost']);
    // Every accepted rail: Cashu as API.md has it, and Lightning (L402), added beside it.
    expect(body.payment).toEqual({ cashu: { mints: [t.mintUrl], unit: 'sat' }, l402: { unit: 'sat' } });
  });

  it('GET /v1/quote prices ceil(amount_per_hour × seconds / 3600) and refuses what is out of range', async () => {
    const cases: Array<[string, number, number]> = [
      ['small', 7200, 120],
      ['small', 60, 1],
      ['small', 61, 2], // 60 × 61 / 3600 = 1.016… → 2: no second for free
      ['small', 3599, 60],
      ['medium', 100, 7], // 240 × 100 / 3600 = 6.67 → 7
      ['large', 3600, 900],
      ['large', 2_592_000, 648_000],
    ];
    for (const [offer, seconds, amount] of cases) {
      const res = await get(`/v1/quote?offer=${offer}&seconds=${seconds}`);
      expect(res.status, `${offer} ${seconds}`).toBe(200);
      expect(JSON.parse(res.text)).toEqual({ offer, seconds, amount, unit: 'sat' });
    }
    for (const query of [
      'offer=small&seconds=59',
      'offer=small&seconds=2592001',
      'offer=small&seconds=0',
      'offer=small&seconds=-5',
      'offer=small&seconds=1.5',
      'offer=small&seconds=abc',
      'offer=small',
      'seconds=7200',
      'offer=nope&seconds=7200',
      'offer=small&seconds=7200&extra=1',
      '',
    ]) {
      const res = await get(`/v1/quote?${query}`);
      expect(res.status, query).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ error: 'invalid_request', message: expect.any(String) });
    }
  });

  it('answers an unknown route with 404 not_found and an oversized body with 413', async () => {
    for (const path of ['/v1/nope', '/v2/leases', '/v1/leases/x/y/z']) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      expect(JSON.parse(res.text)).toMatchObject({ error: 'not_found' });
    }
    // URLs Fastify refuses before routing still answer in the API's error format.
    const badUrl = await get('/v1/leases/%ZZ');
    expect(badUrl.status).toBe(400);
    expect(JSON.parse(badUrl.text)).toMatchObject({ error: 'invalid_request' });
    const longId = await get(`/v1/leases/${'a'.repeat(3000)}`);
    expect(longId.status).toBeGreaterThanOrEqual(400);
    expect(longId.status).toBeLessThan(500);
    expect(JSON.parse(longId.text)).toMatchObject({ error: 'invalid_request' });
    const badMintUrl = await get('/mint/v1/keys/%ZZ');
    expect(badMintUrl.status).toBe(400);
    expect(JSON.parse(badMintUrl.text)).toMatchObject({ detail: expect.any(String), code: 10000 });
    const big = await postJson(`${t.url}/v1/leases`, {
      offer: 'small',
      seconds: 7200,
      image: 'busybox',
      command: ['x'.repeat(2 * 1024 * 1024)],
    });
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ error: 'payload_too_large' });
  });

  it('the operator ledger needs the operator token', async () => {
    for (const headers of [{}, auth('wrong'), auth(`${OPERATOR}x`)]) {
      const res = await get('/v1/operator/ledger', headers);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.text)).toMatchObject({ error: 'unauthorized' });
    }
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR))).toEqual([]);
    // On a node that has them, a wrong method is told which one the route takes, not that the
    // operator routes are absent.
    const wrong = await get('/v1/operator/payout', auth(OPERATOR));
    expect(wrong.status).toBe(405);
    expect(JSON.parse(wrong.text)).toEqual({
      error: 'invalid_request',
      message: 'GET is not served at /v1/operator/payout; it takes POST',
    });
  });
});

describe('a lease over its whole life', () => {
  const body = { offer: 'small', seconds: 7200, image: 'busybox' };

  it('402 challenge, 201 create, 200 replay, get, exec, extend, stop, and the 409s after', async () => {
    // 402 with a NUT-18 request the wallet library decodes.
    const unpaid = await postJson(`${t.url}/v1/leases`, body);
    expect(unpaid.status).toBe(402);
    expect(unpaid.body).toEqual({
      error: 'payment_required',
      message: expect.any(String),
      amount: 120,
      unit: 'sat',
      mints: [t.mintUrl],
      l402: { invoice: expect.stringMatching(/^lnbc/), macaroon: expect.any(String) },
    });
    const pr = decodePaymentRequest(unpaid.headers.get('x-cashu') ?? '');
    expect(Number(pr.amount)).toBe(120);
    expect(pr.unit).toBe('sat');
    expect(pr.mints).toEqual([t.mintUrl]);
    expect(pr.transport ?? []).toEqual([]);

    const before = await offersAvailable();

    // 201: a running sandbox, a credential, change in the body and in X-Cashu.
    const paid = nextToken();
    const created = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': paid.token });
    expect(created.status).toBe(201);
    const lease = created.body;
    expect(lease).toEqual({
      id: expect.stringMatching(/^lse_[0-9a-z]{26}$/),
      token: expect.any(String),
      state: 'running',
      offer: 'small',
      image: 'busybox',
      created_at: expect.any(String),
      expires_at: expect.any(String),
      paid: 128,
      unit: 'sat',
      change: expect.stringMatching(/^cashuB/),
      ports: {},
      ssh: { host: '127.0.0.1', port: expect.any(Number), user: expect.stringMatching(/^lse_/) },
    });
    expect(
      Date.parse(String(lease.expires_at)) - Date.parse(String(lease.created_at)),
    ).toBeGreaterThanOrEqual(7200 * 1000);
    expect(Buffer.from(String(lease.token), 'base64url').length).toBe(32);
    expect(created.headers.get('x-cashu')).toBe(lease.change);
    expect(await allSpent(wallet, paid.send)).toBe(true);
    expect(sumOf(await (await receiver()).receive(String(lease.change)))).toBe(8);
    expect((await offersAvailable()).small).toBe((before.small ?? 0) - 1);

    // Replay: 200, same body, nothing charged again.
    const replay = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': paid.token });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(lease);
    expect(replay.headers.get('x-cashu')).toBe(lease.change);

    // GET: 200 with the credential; 401, the same answer, for everything else.
    const status = await get(`/v1/leases/${lease.id}`, auth(lease.token));
    expect(status.status).toBe(200);
    const shown = JSON.parse(status.text) as Record<string, unknown>;
    expect(shown).toEqual({
      id: lease.id,
      state: 'running',
      offer: 'small',
      image: 'busybox',
      created_at: lease.created_at,
      expires_at: lease.expires_at,
      paid: 128,
      unit: 'sat',
      ports: {},
      remaining_seconds: expect.any(Number),
      ssh: lease.ssh,
    });
    expect(shown.remaining_seconds as number).toBeGreaterThan(7000);
    expect(shown.remaining_seconds as number).toBeLessThanOrEqual(7200);
    const denied = new Set<string>();
    for (const headers of [
      {},
      auth('wrong'),
      auth(`${lease.token}A`),
      { authorization: String(lease.token) },
      { authorization: `Basic ${lease.token}` },
    ]) {
      const res = await get(`/v1/leases/${lease.id}`, headers);
      expect(res.status).toBe(401);
      denied.add(res.text);
    }
    for (const id of ['lse_00000000000000000000000000', 'nope', String(lease.id).toUpperCase()]) {
      const res = await get(`/v1/leases/${id}`, auth(lease.token));
      expect(res.status).toBe(401);
      denied.add(res.text);
    }
    expect(denied.size).toBe(1); // no way to learn whether an id exists

    // exec: output, exit code, stdin, timeout, the output cap.
    const exec = (payload: unknown, credential: unknown = lease.token) =>
      postJson(`${t.url}/v1/leases/${lease.id}/exec`, payload, auth(credential));
    const both = await exec({ command: ['sh', '-c', 'echo out; echo err >&2; exit 3'] });
    expect(both.status).toBe(200);
    expect(both.body).toEqual({ exit_code: 3, stdout: 'out\n', stderr: 'err\n', truncated: false });
    const stdin = await exec({ command: ['cat'], stdin: 'hello from stdin\n' });
    expect(stdin.body).toEqual({ exit_code: 0, stdout: 'hello from stdin\n', stderr: '', truncated: false });
    const slow = await exec({ command: ['sleep', '30'], timeout_seconds: 1 });
    expect(slow.status).toBe(200);
    expect(slow.body.exit_code).toBe(137);
    const cap = 1024 * 1024;
    const flood = await exec({ command: ['sh', '-c', `head -c ${cap + 4096} /dev/zero | tr '\\0' a`] });
    expect(flood.status).toBe(200);
    expect(flood.body.truncated).toBe(true);
    expect(String(flood.body.stdout).length).toBe(cap);
    expect(String(flood.body.stdout)).toMatch(/^a+$/);
    // Cut in the middle of a character (a 2-byte é straddles the cap): the text ends before it,
    // without a U+FFFD the command never wrote.
    const accents = await exec({
      command: ['sh', '-c', `printf a; yes é | tr -d '\\n' | head -c ${cap + 4096}`],
    });
    expect(accents.body.truncated).toBe(true);
    expect(accents.body.stdout).toBe(`a${'é'.repeat((cap - 2) / 2)}`);
    expect((await exec({ command: ['true'] }, 'wrong')).status).toBe(401);
    expect((await exec({ command: [] })).status).toBe(400);
    expect((await exec({ command: ['true'], timeout_seconds: 0 })).status).toBe(400);

    const leaseJson = async () => {
      const r = await exec({ command: ['cat', '/run/alacarte/lease.json'] });
      return JSON.parse(String(r.body.stdout)) as { id: string; expires_at: string };
    };
    expect(await leaseJson()).toEqual({ id: lease.id, expires_at: lease.expires_at });

    // extend: no credential needed; 402 without payment; 200 with a later deadline and change.
    const unpaidExtend = await postJson(`${t.url}/v1/leases/${lease.id}/extend`, { seconds: 3600 });
    expect(unpaidExtend.status).toBe(402);
    expect(unpaidExtend.body).toMatchObject({ error: 'payment_required', amount: 60, unit: 'sat' });
    expect(Number(decodePaymentRequest(unpaidExtend.headers.get('x-cashu') ?? '').amount)).toBe(60);
    const noLease = await postJson(
      `${t.url}/v1/leases/lse_00000000000000000000000000/extend`,
      { seconds: 3600 },
      { 'x-cashu': pool[0]?.token ?? '' },
    );
    expect(noLease.status).toBe(404);
    expect(noLease.body).toMatchObject({ error: 'not_found' });
    expect(await allUnspent(wallet, pool[0]?.send ?? [])).toBe(true);

    const fund = nextToken();
    const extended = await postJson(
      `${t.url}/v1/leases/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': fund.token },
    );
    expect(extended.status).toBe(200);
    expect(Date.parse(String(extended.body.expires_at))).toBe(
      Date.parse(String(lease.expires_at)) + 3600_000,
    );
    expect(extended.body).toMatchObject({ id: lease.id, state: 'running', paid: 256 });
    expect(extended.body.token).toBeUndefined();
    expect(extended.headers.get('x-cashu')).toBe(extended.body.change);
    expect(sumOf(await (await receiver()).receive(String(extended.body.change)))).toBe(128 - 60);
    expect(await leaseJson()).toEqual({ id: lease.id, expires_at: extended.body.expires_at });
    const extendedAgain = await postJson(
      `${t.url}/v1/leases/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': fund.token },
    );
    expect(extendedAgain.status).toBe(200);
    expect(extendedAgain.body.expires_at).toBe(extended.body.expires_at);
    expect(extendedAgain.body.change).toBe(extended.body.change);

    // stop: 200, refund of the unused whole seconds, the same answer again.
    const stop = await postJson(`${t.url}/v1/leases/${lease.id}`, undefined, auth(lease.token), 'DELETE');
    expect(stop.status).toBe(200);
    expect(stop.body).toMatchObject({
      id: lease.id,
      state: 'stopped',
      refund: expect.stringMatching(/^cashuB/),
    });
    const refunded = stop.body.refunded as number;
    // 10800 s were paid (180 sat); a few seconds went by.
    expect(refunded).toBeGreaterThanOrEqual(178);
    expect(refunded).toBeLessThanOrEqual(180);
    const stopAgain = await postJson(
      `${t.url}/v1/leases/${lease.id}`,
      undefined,
      auth(lease.token),
      'DELETE',
    );
    expect(stopAgain.status).toBe(200);
    expect(stopAgain.body).toEqual(stop.body);
    expect(sumOf(await (await receiver()).receive(String(stop.body.refund)))).toBe(refunded);
    expect(
      (await postJson(`${t.url}/v1/leases/${lease.id}`, undefined, auth('wrong'), 'DELETE')).status,
    ).toBe(401);

    // After the end: exec and extend are 409, and the extension's token stays unspent.
    const late = await exec({ command: ['true'] });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ error: 'lease_not_running' });
    const lateFund = nextToken();
    const lateExtend = await postJson(
      `${t.url}/v1/leases/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': lateFund.token },
    );
    expect(lateExtend.status).toBe(409);
    expect(lateExtend.body).toMatchObject({ error: 'lease_not_running' });
    expect(await allUnspent(wallet, lateFund.send)).toBe(true);
    pool.push(lateFund);
    // Without a payment too: 409, not a 402 challenge (an invoice for what cannot be bought).
    const unpaidLate = await postJson(`${t.url}/v1/leases/${lease.id}/extend`, { seconds: 3600 });
    expect(unpaidLate.status).toBe(409);
    expect(unpaidLate.body).toMatchObject({ error: 'lease_not_running' });
    const gone = await get(`/v1/leases/${lease.id}`, auth(lease.token));
    expect(JSON.parse(gone.text)).toMatchObject({ state: 'stopped', remaining_seconds: 0 });
    expect(t.driver.initPid(String(lease.id))).toBeUndefined();
    expect((await t.driver.list()).map((s) => s.leaseId)).not.toContain(lease.id);
    expect((await offersAvailable()).small).toBe(before.small);
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR))).toEqual([]);
  });

  it('503 start_failed gives the whole payment back as a token a wallet receives, also on replay', async () => {
    const paid = nextToken();
    const failBody = { offer: 'small', seconds: 3600, image: 'ghost' };
    const first = await postJson(`${t.url}/v1/leases`, failBody, { 'x-cashu': paid.token });
    expect(first.status).toBe(503);
    expect(first.body).toEqual({
      error: 'start_failed',
      message: expect.any(String),
      refund: expect.stringMatching(/^cashuB/),
      refunded: 128,
      refunds: [{ mint: t.mintUrl, token: first.body.refund, amount: 128 }],
    });
    expect(await allSpent(wallet, paid.send)).toBe(true);
    const refund = getDecodedToken(
      String(first.body.refund),
      (await receiver()).keyChain.getKeysets().map((k) => k.id),
    );
    expect(sumOf(refund.proofs)).toBe(128);
    const again = await postJson(`${t.url}/v1/leases`, failBody, { 'x-cashu': paid.token });
    expect(again.status).toBe(503);
    expect(again.body).toEqual(first.body);
    expect(sumOf(await (await receiver()).receive(String(first.body.refund)))).toBe(128);
    expect((await t.driver.list()).length).toBe(0);
    const books = await ledgerOf(t.url, OPERATOR);
    expect(books.leases.failed).toBe(1);
    expect(expectBalanced(books)).toEqual([]);
  });

  it('a V3 cashuA token pays too, and its replay is the same lease', async () => {
    const paid = nextToken();
    const v3 = `cashuA${Buffer.from(
      JSON.stringify({
        token: [
          {
            mint: t.mintUrl,
            proofs: paid.send.map((p) => ({ id: p.id, amount: sumOf([p]), secret: p.secret, C: p.C })),
          },
        ],
        unit: 'sat',
      }),
    ).toString('base64url')}`;
    const created = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': v3 });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ paid: 128, state: 'running' });
    expect(await allSpent(wallet, paid.send)).toBe(true);
    // The same proofs as a V4 token are the same payment: a replay, not a second charge.
    const replay = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': paid.token });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(created.body);
    // Ten concurrent stops: one refund, ten identical answers.
    const stops = await Promise.all(
      Array.from({ length: 10 }, () =>
        postJson(`${t.url}/v1/leases/${created.body.id}`, undefined, auth(created.body.token), 'DELETE'),
      ),
    );
    for (const s of stops) {
      expect(s.status).toBe(200);
      expect(s.body).toEqual(stops[0]!.body);
    }
    const books = await ledgerOf(t.url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
  });

  it('attach: 401 without the credential, 409 once the lease has ended (before any upgrade)', async () => {
    const paid = nextToken();
    const created = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'small', seconds: 600, image: 'busybox' },
      {
        'x-cashu': paid.token,
      },
    );
    expect(created.status).toBe(201);
    const upgrade = (id: unknown, protocols: string[]) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${t.url.replace('http', 'ws')}/v1/leases/${String(id)}/attach`, protocols);
        ws.once('open', () => {
          ws.close();
          resolve(101);
        });
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('error', reject);
      });
    expect(await upgrade(created.body.id, [`bearer.${created.body.token}`])).toBe(101);
    expect(await upgrade(created.body.id, ['bearer.wrong'])).toBe(401);
    expect(await upgrade('lse_00000000000000000000000000', [`bearer.${created.body.token}`])).toBe(401);
    const stop = await postJson(
      `${t.url}/v1/leases/${created.body.id}`,
      undefined,
      auth(created.body.token),
      'DELETE',
    );
    expect(stop.status).toBe(200);
    expect(await upgrade(created.body.id, [`bearer.${created.body.token}`])).toBe(409);
  });

  it("a ports request comes back as URLs on the node's own listener in the answer", async () => {
    const paid = nextToken();
    const created = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'small', seconds: 60, image: 'busybox', ports: [8080] },
      { 'x-cashu': paid.token },
    );
    expect(created.status).toBe(201);
    expect(created.body.ports).toEqual({ '8080': `${t.url}/v1/leases/${created.body.id}/ports/8080/` });
    const stop = await postJson(
      `${t.url}/v1/leases/${created.body.id}`,
      undefined,
      auth(created.body.token),
      'DELETE',
    );
    expect(stop.status).toBe(200);
    expect(stop.body.refunded).toBe(0); // 60 s cost 1 sat; less than a whole sat of time is left
    expect(stop.body.refund).toBeNull();
  });
});

async function offersAvailable(): Promise<Record<string, number>> {
  const res = await get('/v1/offers');
  const body = JSON.parse(res.text) as { offers: Array<{ id: string; available: number }> };
  return Object.fromEntries(body.offers.map((o) => [o.id, o.available]));
}

describe('metrics after the workload', () => {
  it('/metrics counts payments by outcome and leases by state', async () => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const value = (name: string, labels: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
      return line === undefined ? undefined : Number(line.split(' ').pop());
    };
    // Paid and accepted above: the lifecycle lease, its extension, the failed start, the V3 lease,
    // the attach lease, the ports lease.
    expect(value('alacarte_payments_total', 'outcome="accepted"')).toBe(6);
    expect(value('alacarte_leases', 'state="failed"')).toBe(1);
    expect(value('alacarte_leases', 'state="stopped"')).toBe(4);
    expect(value('alacarte_leases', 'state="running"')).toBe(0);
  });
});
