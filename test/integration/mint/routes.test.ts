import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestMint,
  createTestServer,
  listenMint,
  mintProofs,
  prepareOutputs,
  type TestMint,
  yOf,
} from '../../unit/mint/harness.js';

let t: TestMint;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  t = await createTestMint();
  app = await createTestServer(t, 64 * 1024);
  base = await listenMint(app);
});
afterAll(async () => {
  await app.close();
  await t.close();
});

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('mint routes over HTTP', () => {
  it('serves info that says loudly it is a test mint, and lists the NUTs it supports', async () => {
    const res = await fetch(`${base}/v1/info`);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const info = (await res.json()) as {
      description: string;
      motd: string;
      nuts: Record<string, unknown>;
      lightning: unknown;
    };
    expect(info.description).toMatch(/TEST MINT.*No real money moves/);
    expect(info.lightning).toEqual({ backend: 'fake', test: true });
    expect(info.motd).toMatch(/No real money moves/);
    expect(Object.keys(info.nuts).sort()).toEqual([
      '10',
      '11',
      '12',
      '14',
      '17',
      '19',
      '20',
      '4',
      '5',
      '7',
      '8',
      '9',
    ]);
    expect(info.nuts['17']).toEqual({
      supported: [
        {
          method: 'bolt11',
          unit: 'sat',
          commands: ['bolt11_mint_quote', 'bolt11_melt_quote', 'proof_state'],
        },
      ],
    });
    expect(info.nuts['20']).toEqual({ supported: true });
  });

  it('answers CORS preflight requests', async () => {
    const res = await fetch(`${base}/v1/swap`, {
      method: 'OPTIONS',
      headers: { origin: 'https://wallet.example', 'access-control-request-method': 'POST' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
  });

  it('answers errors in the NUT format with 4xx: bad JSON, unknown route, unknown keyset, too large', async () => {
    expect(await post('/v1/swap', '{"inputs": [')).toMatchObject({ status: 400, body: { code: 10000 } });
    const unknown = await fetch(`${base}/v1/nothing`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: 10000 });
    const keys = await fetch(`${base}/v1/keys/01${'00'.repeat(32)}`);
    expect(keys.status).toBe(400);
    expect(await keys.json()).toMatchObject({ code: 12001 });
    const huge = await post('/v1/checkstate', {
      Ys: Array.from({ length: 2000 }, () => `02${'ab'.repeat(32)}`),
    });
    expect(huge).toMatchObject({ status: 413, body: { code: 10000 } });
    const quote = await fetch(`${base}/v1/mint/quote/bolt11/not-a-quote`);
    expect(quote.status).toBe(400);
  });

  it('answers a body sent without the JSON content type in the NUT format, saying which header to send', async () => {
    // A form (curl -d), XML, no content type at all, a malformed one, and JSON sent as text.
    for (const contentType of [
      'application/x-www-form-urlencoded',
      'application/xml',
      undefined,
      'json',
      'text/plain',
    ]) {
      const res = await fetch(`${base}/v1/swap`, {
        method: 'POST',
        headers: contentType === undefined ? {} : { 'content-type': contentType },
        body:
          contentType === undefined ? new Blob(['{"inputs":[],"outputs":[]}']) : '{"inputs":[],"outputs":[]}',
      });
      expect(res.status, String(contentType)).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toEqual({
        detail: 'the body must be a JSON object sent with the header content-type: application/json',
        code: 10000,
      });
    }
  });

  it('refuses a description longer than BOLT11 allows (in bytes), and a melt of its own paid invoice', async () => {
    const long = await post('/v1/mint/quote/bolt11', {
      amount: 5,
      unit: 'sat',
      description: 'é'.repeat(400),
    });
    expect(long).toMatchObject({ status: 400, body: { code: 10000 } });
    // The fake backend settles this mint's invoices at once: nothing left to settle internally.
    const quote = await post('/v1/mint/quote/bolt11', { amount: 5, unit: 'sat' });
    const melt = await post('/v1/melt/quote/bolt11', { request: quote.body.request, unit: 'sat' });
    expect(melt).toMatchObject({ status: 400, body: { code: 20006 } });
  });

  it('lets exactly one of 50 concurrent swaps of the same proofs through; the rest get 11001', async () => {
    const proofs = await mintProofs(t, [32, 16, 2]);
    const keyset = t.mint.keys().keysets[0]!;
    const attempts = Array.from({ length: 50 }, () =>
      post('/v1/swap', {
        inputs: proofs,
        outputs: prepareOutputs(keyset.id, [2, 16, 32]).map((p) => p.output),
      }),
    );
    const results = await Promise.all(attempts);
    const ok = results.filter((r) => r.status === 200);
    const spent = results.filter((r) => r.status === 400 && r.body.code === 11001);
    expect(ok).toHaveLength(1);
    expect(spent).toHaveLength(49);
    const rows = await t.db
      .selectFrom('mint_proofs')
      .select(['y', 'state'])
      .where(
        'y',
        'in',
        proofs.map((p) => yOf(p.secret)),
      )
      .execute();
    expect(rows).toHaveLength(3);
    expect(rows.every((r) => r.state === 'SPENT')).toBe(true);
    const signed = await t.db
      .selectFrom('mint_signatures')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    // 3 minted + 3 from the one swap that went through
    expect(Number(signed.n)).toBe(6);
  });

  it('replays a retried swap with the cached answer (NUT-19)', async () => {
    const proofs = await mintProofs(t, [4]);
    const keyset = t.mint.keys().keysets[0]!;
    const body = { inputs: proofs, outputs: prepareOutputs(keyset.id, [4]).map((p) => p.output) };
    const first = await post('/v1/swap', body);
    const second = await post('/v1/swap', body);
    expect(first.status).toBe(200);
    expect(second).toEqual(first);
  });
});
