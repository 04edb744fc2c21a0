import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import {
  checkStateSchema,
  meltQuoteSchema,
  meltSchema,
  mintQuoteSchema,
  mintSchema,
  restoreSchema,
  swapSchema,
} from '../../../src/mint/http/schemas.js';
import {
  createTestMint,
  createTestServer,
  mintProofs,
  prepareOutputs,
  type TestMint,
  yOf,
} from '../../unit/mint/harness.js';

/**
 * Malformed bodies at every mint route: each must get a 4xx NUT error (`{detail, code}`), never a
 * 5xx, and the server must keep serving. A body the route's schema accepts is not malformed; it
 * may succeed, but must not 5xx either.
 */
const RUNS = 1000;

let t: TestMint;
let app: FastifyInstance;
const templates: Record<string, unknown> = {};

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

beforeAll(async () => {
  // Small limits keep the oversized-array cases cheap while still crossing them.
  t = await createTestMint({ limits: { maxInputs: 50, maxOutputs: 50, maxCheckstate: 50 } });
  app = await createTestServer(t, 256 * 1024);
  const keyset = t.mint.keys().keysets[0]!;
  const proofs = await mintProofs(t, [8, 4]);
  const outputs = prepareOutputs(keyset.id, [8, 4]).map((p) => p.output);
  const mintQuote = await t.mint.createMintQuote({ amount: 12, unit: 'sat' });
  const outside = await new FakeLightningBackend().createInvoice(Amount.of(10), 'outside');
  const meltQuote = await t.mint.createMeltQuote({ request: outside.bolt11, unit: 'sat' });
  templates['/v1/swap'] = { inputs: proofs, outputs };
  templates['/v1/mint/quote/bolt11'] = { amount: 12, unit: 'sat', description: 'x' };
  templates['/v1/mint/bolt11'] = { quote: mintQuote.quote, outputs };
  templates['/v1/melt/quote/bolt11'] = { request: outside.bolt11, unit: 'sat' };
  templates['/v1/melt/bolt11'] = { quote: meltQuote.quote, inputs: proofs, outputs };
  templates['/v1/checkstate'] = { Ys: proofs.map((p) => yOf(p.secret)) };
  templates['/v1/restore'] = { outputs };
});
afterAll(async () => {
  await app?.close();
  await t?.close();
});

const SCHEMAS: Record<string, z.ZodType> = {
  '/v1/swap': swapSchema,
  '/v1/mint/quote/bolt11': mintQuoteSchema,
  '/v1/mint/bolt11': mintSchema,
  '/v1/melt/quote/bolt11': meltQuoteSchema,
  '/v1/melt/bolt11': meltSchema,
  '/v1/checkstate': checkStateSchema,
  '/v1/restore': restoreSchema,
};

const hexOf = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
/** Values that break a field: wrong types, huge and fractional numbers, bad or off-curve hex. */
const weird: fc.Arbitrary<Json> = fc.oneof(
  fc.jsonValue() as fc.Arbitrary<Json>,
  fc.constantFrom<Json>(
    2 ** 64,
    2 ** 53,
    -1,
    1.5,
    1e308,
    -0,
    '',
    '__proto__',
    'constructor',
    [],
    {},
    null,
    true,
    '1',
    '0x10',
  ),
  fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `02${hexOf(b)}`), // mostly off-curve
  fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `04${hexOf(b)}`),
  fc.uint8Array({ minLength: 1, maxLength: 70 }).map(hexOf),
  fc.string({ maxLength: 80 }),
  fc.string({ minLength: 1, maxLength: 3 }).map((s) => s.repeat(700)),
);

type Mutation =
  | { kind: 'set'; at: number; value: Json }
  | { kind: 'delete'; at: number }
  | { kind: 'duplicate'; at: number }
  | { kind: 'oversize'; at: number; n: number }
  | { kind: 'upper'; at: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: weird }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('oversize' as const),
      at: fc.nat(),
      n: fc.integer({ min: 51, max: 400 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('upper' as const), at: fc.nat() }) },
);

/** Every container and leaf position in a JSON value, as paths. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) out.push(...paths(v, [...prefix, i]));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  }
  return out;
}

function mutate(template: Json, mutations: Mutation[]): Json {
  let body = structuredClone(template);
  for (const m of mutations) {
    const all = paths(body);
    const path = all[m.at % all.length]!;
    if (path.length === 0) {
      if (m.kind === 'set') body = m.value;
      continue;
    }
    const parentPath = path.slice(0, -1);
    const key = path[path.length - 1]!;
    let parent: Json = body;
    for (const k of parentPath) parent = (parent as Record<string | number, Json>)[k]!;
    const container = parent as Record<string | number, Json> & Json[];
    const current = container[key]!;
    switch (m.kind) {
      case 'set':
        container[key] = m.value;
        break;
      case 'delete':
        if (Array.isArray(container)) container.splice(Number(key), 1);
        else delete container[key];
        break;
      case 'duplicate':
        if (Array.isArray(container)) container.push(structuredClone(current));
        else if (Array.isArray(current) && current.length > 0) current.push(structuredClone(current[0]!));
        break;
      case 'oversize':
        if (Array.isArray(current) && current.length > 0) {
          container[key] = Array.from({ length: m.n }, (_, i) =>
            structuredClone(current[i % current.length]!),
          );
        }
        break;
      case 'upper':
        if (typeof current === 'string') container[key] = current.toUpperCase();
        break;
    }
  }
  return body;
}

async function expectNutAnswer(method: 'GET' | 'POST', url: string, payload?: string, contentType?: string) {
  const res = await app.inject({
    method,
    url,
    ...(payload === undefined ? {} : { payload }),
    headers: contentType === undefined ? {} : { 'content-type': contentType },
  });
  expect(res.statusCode, `${method} ${url} ${payload?.slice(0, 200)}`).toBeLessThan(500);
  if (res.statusCode >= 400) {
    const body = res.json() as { detail: unknown; code: unknown };
    expect(typeof body.detail).toBe('string');
    expect(typeof body.code).toBe('number');
  }
  return res.statusCode;
}

describe('fuzzing every mint route with malformed requests', () => {
  for (const route of Object.keys(SCHEMAS)) {
    it(`POST ${route}: ${RUNS} mutated bodies, all 4xx NUT errors`, async () => {
      const schema = SCHEMAS[route]!;
      let malformed = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
          const body = mutate(templates[route] as Json, mutations);
          const status = await expectNutAnswer(
            'POST',
            `/mint${route}`,
            JSON.stringify(body),
            'application/json',
          );
          if (!schema.safeParse(body).success) {
            malformed++;
            expect(status).toBeGreaterThanOrEqual(400);
          }
        }),
        { numRuns: RUNS },
      );
      expect(malformed).toBeGreaterThan(RUNS / 2);
    });

    it(`POST ${route}: raw payloads that are not JSON objects`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.string({ maxLength: 200 }),
            fc.jsonValue().map((v) => JSON.stringify(v)),
          ),
          fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded'),
          async (payload, contentType) => {
            const status = await expectNutAnswer('POST', `/mint${route}`, payload, contentType);
            expect(status).toBeGreaterThanOrEqual(400);
          },
        ),
        { numRuns: 200 },
      );
    });
  }

  for (const route of ['/v1/keys/', '/v1/mint/quote/bolt11/', '/v1/melt/quote/bolt11/']) {
    it(`GET ${route}{param}: ${RUNS} bad parameters`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.string({ maxLength: 300 }), async (param) => {
          const status = await expectNutAnswer('GET', `/mint${route}${encodeURIComponent(param)}`);
          expect(status).toBeGreaterThanOrEqual(400);
        }),
        { numRuns: RUNS },
      );
    });
  }

  it('answers deeply nested JSON with a 4xx', async () => {
    for (const route of Object.keys(SCHEMAS)) {
      const payload = `{"inputs":${'['.repeat(100_000)}${']'.repeat(100_000)},"outputs":[],"Ys":[],"quote":1}`;
      // checkstate's `Ys: []` and restore's `outputs: []` are valid; elsewhere the nesting is malformed.
      const status = await expectNutAnswer('POST', `/mint${route}`, payload, 'application/json');
      expect(status).toBe(route === '/v1/checkstate' || route === '/v1/restore' ? 200 : 400);
    }
  });

  it('keeps serving after all that', async () => {
    const res = await app.inject({ method: 'GET', url: '/mint/v1/info' });
    expect(res.statusCode).toBe(200);
    const keys = await app.inject({ method: 'GET', url: '/mint/v1/keys' });
    expect(keys.statusCode).toBe(200);
  });
});
