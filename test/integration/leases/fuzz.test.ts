import { connect } from 'node:net';
import { getEncodedToken, Wallet } from '@cashu/cashu-ts';
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_STATUS } from '../../../src/core/errors.js';
import { type LeaseTestNode, postJson, startLeaseNode, tokens } from '../../helpers/lease-node.js';

/**
 * fast-check fuzzing of every lease route, headers included (X-Cashu, Authorization,
 * Idempotency-Key, Content-Type), through the node's own Fastify instance (in-process inject, so
 * thousands of cases stay fast) and, for what only a socket can carry, over raw TCP.
 *
 * Nothing the fuzzer sends can pay, so no sandbox starts; one real lease exists so that lease ids
 * that are found in the store are exercised too. Every answer must be below 500, the error body
 * must follow API.md, and no lease or payment may appear.
 */
const RUNS = 1000;
const OPERATOR = 'operator-token-for-fuzz-tests-01234';
let t: LeaseTestNode;
let realId = '';
let realToken = '';
let validToken = '';
/** The real token relabelled: another unit, another mint. */
const relabelled = { usd: '', foreign: '' };
let counts: { leases: number; payments: number };

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

beforeAll(async () => {
  t = await startLeaseNode({ operatorToken: OPERATOR });
  const { tokens: pool } = await tokens(t.mintUrl, 2, 128);
  const created = await postJson(
    `${t.url}/v1/leases`,
    { offer: 'small', seconds: 7200, image: 'busybox' },
    { 'x-cashu': pool[0]!.token },
  );
  expect(created.status).toBe(201);
  realId = String(created.body.id);
  realToken = String(created.body.token);
  // A real token of this mint, already spent by a wallet: the fuzzer mutates it (some mutations,
  // such as the ignored low bits of the last base64 character, leave it the same token), and
  // whatever it makes of it can never pay.
  validToken = pool[1]!.token;
  const spender = new Wallet(t.mintUrl, { unit: 'sat' });
  await spender.loadMint();
  await spender.receive(validToken);
  relabelled.usd = getEncodedToken({ mint: t.mintUrl, unit: 'usd', proofs: pool[1]!.send });
  relabelled.foreign = getEncodedToken({
    mint: 'http://127.0.0.1:1/mint',
    unit: 'sat',
    proofs: pool[1]!.send,
  });
  counts = await storeCounts();
});
afterAll(async () => {
  await t?.close();
});

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

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64url');
const hex = (maxLength: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), maxLength });

/** Junk for the X-Cashu header: random text, token-shaped junk, real tokens mutated, huge values. */
function cashuHeader(): fc.Arbitrary<string | string[] | undefined> {
  const proof = fc.record(
    {
      id: fc.oneof(hex(70), fc.constantFrom('00', '009a1f293253e41e'), fc.jsonValue()),
      amount: fc.oneof(
        fc.integer(),
        fc.double(),
        fc.constantFrom(2 ** 64, -1, 0, '8', 1e308),
        fc.jsonValue(),
      ),
      secret: fc.oneof(
        fc.string(),
        fc.constantFrom('["P2PK",{"nonce":"00","data":"02"}]', ''),
        fc.jsonValue(),
      ),
      C: fc.oneof(hex(70), fc.constant(`02${'00'.repeat(32)}`), fc.jsonValue()),
      witness: fc.oneof(fc.string(), fc.jsonValue()),
    },
    { requiredKeys: [] },
  );
  const v3 = fc
    .record({
      token: fc.array(
        fc.record({
          mint: fc.oneof(fc.constant(t.mintUrl), fc.webUrl(), fc.string(), fc.jsonValue()),
          proofs: fc.oneof(fc.array(proof, { maxLength: 5 }), fc.jsonValue()),
        }),
        { maxLength: 3 },
      ),
      unit: fc.oneof(fc.constantFrom('sat', 'usd', 'msat', ''), fc.string(), fc.jsonValue()),
    })
    .map((o) => `cashuA${b64(JSON.stringify(o))}`);
  const mutated = fc
    .tuple(
      fc.nat({ max: validToken.length - 1 }),
      fc.string({ minLength: 0, maxLength: 4 }),
      fc.nat({ max: 8 }),
    )
    .map(([at, insert, drop]) => validToken.slice(0, at) + insert + validToken.slice(at + drop))
    .filter((s) => s !== validToken);
  return fc.oneof(
    fc.constant(undefined),
    fc.string(),
    fc.string({ unit: 'grapheme', maxLength: 200 }),
    fc.uint8Array({ maxLength: 300 }).map((b) => `cashuB${b64(b)}`),
    fc.uint8Array({ maxLength: 300 }).map((b) => `cashuA${b64(b)}`),
    v3,
    mutated,
    fc.constantFrom('cashuA', 'cashuB', 'cashuB=', `cashuB${'A'.repeat(70_000)}`, 'creqA', ' ', '\t'),
    // Found by this fuzzer: a V3 token whose mint or unit is not a string (was a 500).
    fc.constantFrom(
      `cashuA${b64('{"token":[{"mint":0,"proofs":[]}],"unit":[]}')}`,
      `cashuA${b64('{"token":[{"mint":{},"proofs":[]}],"unit":"sat"}')}`,
      `cashuA${b64(JSON.stringify({ token: [{ mint: t.mintUrl, proofs: [] }], unit: 7 }))}`,
      `cashuA${b64(JSON.stringify({ token: [{ mint: t.mintUrl, proofs: [] }], unit: 'usd' }))}`,
      relabelled.usd,
      relabelled.foreign,
    ),
    fc.nat({ max: 200_000 }).map((n) => `cashuB${'x'.repeat(n)}`),
    fc.array(fc.oneof(fc.string(), fc.constant(validToken)), { minLength: 2, maxLength: 3 }),
  );
}

function authHeader(): fc.Arbitrary<string | string[] | undefined> {
  return fc.oneof(
    fc.constant(undefined),
    fc.string(),
    fc.string({ unit: 'grapheme', maxLength: 100 }).map((s) => `Bearer ${s}`),
    fc.base64String({ maxLength: 64 }).map((s) => `Bearer ${s}`),
    fc.constantFrom('Bearer', 'Bearer ', 'bearer x', `Bearer ${'A'.repeat(5000)}`, `Basic ${realToken}`),
    fc.constant(`Bearer ${realToken}x`),
    fc.constant(`Bearer ${realToken.slice(1)}`),
    fc.array(fc.string(), { minLength: 2, maxLength: 3 }),
  );
}

function idemHeader(): fc.Arbitrary<string | string[] | undefined> {
  return fc.oneof(
    fc.constant(undefined),
    fc.string({ maxLength: 300 }),
    fc.string({ unit: 'grapheme', maxLength: 50 }),
    fc.constantFrom('', ' ', 'a'.repeat(256), 'a'.repeat(255), 'ok-key'),
    fc.array(fc.string(), { minLength: 2, maxLength: 2 }),
  );
}

function contentType(): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant('application/json') },
    fc.constantFrom(
      undefined,
      'text/plain',
      'application/json; charset=utf-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/json; charset=latin1',
      '',
    ),
    fc.string({ maxLength: 40 }),
  );
}

/** Lease ids in the path: the real one, well-formed unknown ones, junk, encodings, traversal. */
function leaseIdParam(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constant(realId),
    fc.constant('lse_00000000000000000000000000'),
    fc.stringMatching(/^lse_[0-9a-z]{26}$/),
    fc.string({ maxLength: 80 }).map(encodeURIComponent),
    fc.string({ unit: 'grapheme', maxLength: 30 }).map(encodeURIComponent),
    fc.constantFrom(
      '..',
      '%2e%2e',
      '%00',
      'lse_',
      `${'a'.repeat(3000)}`,
      realId.toUpperCase(),
      `${realId}%20`,
      '%ZZ',
    ),
  );
}

const weird: fc.Arbitrary<Json> = fc.oneof(
  fc.jsonValue() as fc.Arbitrary<Json>,
  fc.constantFrom<Json>(
    2 ** 64,
    2 ** 53,
    -1,
    0,
    1.5,
    1e308,
    -0,
    '',
    '__proto__',
    'x'.repeat(5000),
    [],
    {},
    null,
    true,
  ),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
);

/** A valid body with one field replaced, removed or added, or something else entirely. */
function body(template: Record<string, Json>): fc.Arbitrary<string | undefined> {
  const keys = Object.keys(template);
  const mutated = fc
    .tuple(fc.constantFrom(...keys, '__proto__', 'constructor', 'extra'), weird, fc.boolean())
    .map(([k, v, drop]) => {
      const copy: Record<string, Json> = { ...template };
      if (drop) delete copy[k];
      else copy[k] = v;
      return JSON.stringify(copy);
    });
  return fc.oneof(
    { weight: 4, arbitrary: mutated },
    fc.constant(JSON.stringify(template)),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 200 }),
    fc.constantFrom(
      undefined,
      '',
      '{',
      '{"__proto__":{"x":1}}',
      '{"constructor":{"prototype":{"x":1}}}',
      'null',
      '[]',
      '\u0000',
    ),
  );
}

interface Case {
  method: 'GET' | 'POST' | 'DELETE';
  url: string;
  headers: Record<string, string | string[] | undefined>;
  payload?: string;
}

async function send(c: Case): Promise<{ status: number; body: string }> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(c.headers)) if (v !== undefined) headers[k] = v;
  const res = await t.node.app.inject({ method: c.method, url: c.url, headers, payload: c.payload });
  return { status: res.statusCode, body: res.body };
}

const API_CODES = Object.keys(ERROR_STATUS).filter((c) => c !== 'internal');
/** Error codes seen over the whole run, to check the fuzzer reaches deep into the checks. */
const codes = new Set<string>();

/** Runs a route's cases and checks every answer: a 4xx with the API's error body, or an allowed success. */
async function fuzz(
  cases: fc.Arbitrary<Case>,
  allowed: readonly number[] = [],
): Promise<Map<number, number>> {
  const seen = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(cases, async (c) => {
      const res = await send(c);
      seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
      if (allowed.includes(res.status)) return;
      expect(
        res.status,
        `${c.method} ${c.url.slice(0, 200)} → ${res.body.slice(0, 300)}`,
      ).toBeGreaterThanOrEqual(400);
      expect(res.status, `${c.method} ${c.url.slice(0, 200)} → ${res.body.slice(0, 300)}`).toBeLessThan(500);
      const parsed = JSON.parse(res.body) as { error?: unknown; message?: unknown };
      expect(API_CODES, res.body.slice(0, 300)).toContain(parsed.error);
      expect(typeof parsed.message).toBe('string');
      codes.add(String(parsed.error));
    }),
    { numRuns: RUNS },
  );
  return seen;
}

const createTemplate: Record<string, Json> = {
  offer: 'small',
  seconds: 7200,
  image: 'busybox',
  command: ['sh'],
  env: { A: 'b' },
  ports: [8080],
};

describe(`fuzzing every lease route (${RUNS} cases each)`, () => {
  it('GET /v1/offers', async () => {
    const query = fc.oneof(
      fc.constant(''),
      fc.string({ maxLength: 100 }).map((s) => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
    );
    await fuzz(
      fc.record({
        method: fc.constant('GET' as const),
        url: query.map((q) => `/v1/offers${q}`),
        headers: fc.record({ 'x-cashu': cashuHeader(), authorization: authHeader() }),
      }),
      [200],
    );
  });

  it('GET /v1/quote', async () => {
    const value = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom(
        'small',
        'medium',
        'large',
        '60',
        '7200',
        '99999999999999999999',
        '-1',
        '1e3',
        '0x10',
        ' 60',
      ),
      fc.nat().map(String),
    );
    const query = fc
      .array(
        fc.tuple(
          fc.oneof(fc.constantFrom('offer', 'seconds', 'x', '__proto__'), fc.string({ maxLength: 10 })),
          value,
        ),
        { maxLength: 4 },
      )
      .map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'));
    const seen = await fuzz(
      fc.record({
        method: fc.constant('GET' as const),
        url: query.map((q) => `/v1/quote?${q}`),
        headers: fc.record({ authorization: authHeader() }),
      }),
      [200],
    );
    expect(seen.get(400)).toBeGreaterThan(0);
  });

  it('POST /v1/leases', async () => {
    const seen = await fuzz(
      fc.record({
        method: fc.constant('POST' as const),
        url: fc.constant('/v1/leases'),
        headers: fc.record({
          'content-type': contentType(),
          'x-cashu': cashuHeader(),
          'idempotency-key': idemHeader(),
          authorization: authHeader(),
        }),
        payload: body(createTemplate),
      }),
    );
    // The fuzzer got past the body into the payment checks, not only schema errors.
    expect(seen.get(402)).toBeGreaterThan(0);
    expect(seen.get(400)).toBeGreaterThan(0);
  });

  it('POST /v1/leases with a valid body: the payment checks', async () => {
    const seen = await fuzz(
      fc.record({
        method: fc.constant('POST' as const),
        url: fc.constant('/v1/leases'),
        headers: fc.record({
          'content-type': fc.constant('application/json'),
          'x-cashu': cashuHeader(),
          'idempotency-key': fc.oneof(fc.constant(undefined), idemHeader()),
        }),
        payload: fc.constantFrom(
          JSON.stringify({ offer: 'small', seconds: 7200, image: 'busybox' }),
          JSON.stringify({ offer: 'large', seconds: 2_592_000, image: 'busybox' }),
          JSON.stringify({ offer: 'small', seconds: 60, image: 'busybox' }),
        ),
      }),
    );
    expect(seen.get(402)).toBeGreaterThan(0);
    for (const code of ['invalid_token', 'mint_not_accepted', 'unit_mismatch'])
      expect([...codes]).toContain(code);
  });

  it('GET /v1/leases/{id}', async () => {
    await fuzz(
      fc.record({
        method: fc.constant('GET' as const),
        url: leaseIdParam().map((id) => `/v1/leases/${id}`),
        headers: fc.record({ authorization: authHeader(), 'x-cashu': cashuHeader() }),
      }),
    );
  });

  it('POST /v1/leases/{id}/exec', async () => {
    await fuzz(
      fc.record({
        method: fc.constant('POST' as const),
        url: leaseIdParam().map((id) => `/v1/leases/${id}/exec`),
        headers: fc.record({ 'content-type': contentType(), authorization: authHeader() }),
        payload: body({ command: ['sh', '-c', 'echo hi'], stdin: 'x', timeout_seconds: 30 }),
      }),
    );
  });

  it('POST /v1/leases/{id}/extend', async () => {
    const seen = await fuzz(
      fc.record({
        method: fc.constant('POST' as const),
        url: leaseIdParam().map((id) => `/v1/leases/${id}/extend`),
        headers: fc.record({
          'content-type': contentType(),
          'x-cashu': cashuHeader(),
          authorization: authHeader(),
        }),
        payload: body({ seconds: 3600 }),
      }),
    );
    // Only a few random cases in a thousand reach the payment check (a found lease, a valid body,
    // no token), sometimes none: that path is asked once on purpose, so every run covers it.
    expect([...seen.keys()].every((status) => status < 500)).toBe(true);
    const unpaid = await postJson(`${t.url}/v1/leases/${realId}/extend`, { seconds: 3600 });
    expect(unpaid.status).toBe(402);
  });

  it('DELETE /v1/leases/{id}', async () => {
    await fuzz(
      fc.record({
        method: fc.constant('DELETE' as const),
        url: leaseIdParam().map((id) => `/v1/leases/${id}`),
        headers: fc.record({ 'content-type': contentType(), authorization: authHeader() }),
        payload: fc.oneof(fc.constant(undefined), body({})),
      }),
    );
  });

  it('GET /v1/leases/{id}/attach (no upgrade) and GET /v1/operator/ledger', async () => {
    await fuzz(
      fc.record({
        method: fc.constant('GET' as const),
        url: fc.oneof(
          leaseIdParam().map((id) => `/v1/leases/${id}/attach`),
          fc.constant('/v1/operator/ledger'),
        ),
        headers: fc.record({
          authorization: authHeader(),
          'sec-websocket-protocol': fc.oneof(fc.constant(undefined), fc.string()),
        }),
      }),
    );
  });

  it('nothing was paid, nothing started, the real lease is untouched', async () => {
    expect(await storeCounts()).toEqual(counts);
    expect((await t.driver.list()).map((s) => s.leaseId)).toEqual([realId]);
    const res = await fetch(`${t.url}/v1/leases/${realId}`, {
      headers: { authorization: `Bearer ${realToken}` },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { state: string }).state).toBe('running');
  });
});

describe('raw HTTP the fetch API cannot send', () => {
  /** Writes bytes to the server and returns the status line's code (0 when it just closed). */
  function raw(request: Buffer): Promise<number> {
    const { port } = new URL(t.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1');
      let data = '';
      socket.on('data', (d) => {
        data += d.toString('latin1');
      });
      socket.on('error', () => resolve(0));
      socket.on('close', () => {
        const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
        resolve(m ? Number(m[1]) : 0);
      });
      socket.setTimeout(10_000, () => reject(new Error('no answer')));
      socket.end(request);
    });
  }

  it('huge and binary headers, bad framing: 4xx or a closed connection, never 5xx', async () => {
    const routes = [
      'POST /v1/leases',
      `POST /v1/leases/${realId}/extend`,
      `GET /v1/leases/${realId}`,
      `DELETE /v1/leases/${realId}`,
      `POST /v1/leases/${realId}/exec`,
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        fc.constantFrom('x-cashu', 'authorization', 'idempotency-key', 'content-type'),
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.nat({ max: 40_000 }).map((n) => new Uint8Array(n).fill(0x41)),
        ),
        fc.oneof(
          fc.constant('{"offer":"small","seconds":7200,"image":"busybox"}'),
          fc.string({ maxLength: 50 }),
        ),
        async (route, name, value, payload) => {
          const head = Buffer.from(
            `${route} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\nconnection: close\r\n${name}: `,
            'latin1',
          );
          const request = Buffer.concat([head, Buffer.from(value), Buffer.from(`\r\n\r\n${payload}`)]);
          const status = await raw(request);
          expect(status === 0 || (status >= 400 && status < 500), `status ${status}`).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
    const health = await fetch(`${t.url}/healthz`);
    expect(health.status).toBe(200);
  });
});
