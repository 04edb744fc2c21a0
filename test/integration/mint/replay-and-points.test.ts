import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { parsePoint } from '../../../src/mint/crypto/index.js';
import {
  createTestMint,
  createTestServer,
  listenMint,
  mintProofs,
  prepareOutputs,
  type TestMint,
  unblind,
} from '../../unit/mint/harness.js';

/**
 * Issue 9, part 7 (mint): a NUT-19 replay answers only the request that was signed (the same quote
 * for a mint, a swap for a swap), and every curve point that comes from outside is validated on
 * every route — a point not on secp256k1 is a 4xx NUT error, never a 200.
 */
let t: TestMint;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  t = await createTestMint();
  app = await createTestServer(t);
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
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function quoteState(id: string): Promise<string> {
  const res = await fetch(`${base}/v1/mint/quote/bolt11/${id}`);
  return ((await res.json()) as { state: string }).state;
}

const keyset = () => t.mint.keys().keysets[0]!;

/** A compressed point in the right format whose x is not on the curve. */
const offCurve = (() => {
  for (let i = 5; ; i++) {
    const hex = `02${i.toString(16).padStart(64, '0')}`;
    if (parsePoint(hex) === undefined) return hex;
  }
})();

describe('NUT-19 replays of mint/bolt11 are bound to the quote', () => {
  it('outputs signed for another quote: 11003 on a paid quote, which stays PAID and mints later', async () => {
    const a = await post('/v1/mint/quote/bolt11', { amount: 8, unit: 'sat' });
    const b = await post('/v1/mint/quote/bolt11', { amount: 8, unit: 'sat' });
    const outputs = prepareOutputs(keyset().id, [8]).map((p) => p.output);
    const minted = await post('/v1/mint/bolt11', { quote: a.body.quote, outputs });
    expect(minted.status).toBe(200);

    const stolen = await post('/v1/mint/bolt11', { quote: b.body.quote, outputs });
    expect(stolen).toMatchObject({ status: 400, body: { code: 11003 } });
    expect(stolen.body.signatures).toBeUndefined();
    expect(await quoteState(String(b.body.quote))).toBe('PAID');

    const fresh = prepareOutputs(keyset().id, [8]).map((p) => p.output);
    expect((await post('/v1/mint/bolt11', { quote: b.body.quote, outputs: fresh })).status).toBe(200);
    expect(await quoteState(String(b.body.quote))).toBe('ISSUED');
  });

  it("an issued quote asked with another quote's outputs: 20002, not those signatures", async () => {
    const a = await post('/v1/mint/quote/bolt11', { amount: 4, unit: 'sat' });
    const b = await post('/v1/mint/quote/bolt11', { amount: 4, unit: 'sat' });
    const outA = prepareOutputs(keyset().id, [4]).map((p) => p.output);
    const outB = prepareOutputs(keyset().id, [4]).map((p) => p.output);
    expect((await post('/v1/mint/bolt11', { quote: a.body.quote, outputs: outA })).status).toBe(200);
    const first = await post('/v1/mint/bolt11', { quote: b.body.quote, outputs: outB });
    expect(first.status).toBe(200);
    const crossed = await post('/v1/mint/bolt11', { quote: b.body.quote, outputs: outA });
    expect(crossed).toMatchObject({ status: 400, body: { code: 20002 } });
    // The quote's own retry is still answered with its own signatures.
    expect(await post('/v1/mint/bolt11', { quote: b.body.quote, outputs: outB })).toEqual(first);
  });

  it("a swap whose inputs were spent elsewhere and whose outputs were a mint's: 11001, not a replay", async () => {
    const quote = await t.mint.createMintQuote({ amount: 2, unit: 'sat' });
    const prepared = prepareOutputs(keyset().id, [2]);
    const outputs = prepared.map((p) => p.output);
    const { signatures } = await t.mint.mint({ quote: quote.quote, outputs });
    const proofs = unblind(prepared, signatures, keyset().keys);
    const spend = await post('/v1/swap', {
      inputs: proofs,
      outputs: prepareOutputs(keyset().id, [2]).map((p) => p.output),
    });
    expect(spend.status).toBe(200);
    const replayed = await post('/v1/swap', { inputs: proofs, outputs });
    expect(replayed).toMatchObject({ status: 400, body: { code: 11001 } });
  });
});

describe('every point from outside is validated', () => {
  it('restore of an output that is not a curve point: 400', async () => {
    const res = await post('/v1/restore', { outputs: [{ amount: 1, id: keyset().id, B_: offCurve }] });
    expect(res).toMatchObject({ status: 400, body: { code: 10000 } });
  });

  it('checkstate of a Y that is not a curve point: 400', async () => {
    const res = await post('/v1/checkstate', { Ys: [offCurve] });
    expect(res).toMatchObject({ status: 400, body: { code: 10000 } });
  });

  it('swap outputs and inputs (B_ and C)', async () => {
    const proofs = await mintProofs(t, [4]);
    const badOut = await post('/v1/swap', {
      inputs: proofs,
      outputs: [{ amount: 4, id: keyset().id, B_: offCurve }],
    });
    expect(badOut.status).toBe(400);
    expect(badOut.body.code).toEqual(expect.any(Number));
    const badC = await post('/v1/swap', {
      inputs: proofs.map((p) => ({ ...p, C: offCurve })),
      outputs: prepareOutputs(keyset().id, [4]).map((p) => p.output),
    });
    expect(badC).toMatchObject({ status: 400, body: { code: 10001 } });
  });

  it('mint outputs, on a paid and on an issued quote', async () => {
    const q = await post('/v1/mint/quote/bolt11', { amount: 1, unit: 'sat' });
    const bad = [{ amount: 1, id: keyset().id, B_: offCurve }];
    expect((await post('/v1/mint/bolt11', { quote: q.body.quote, outputs: bad })).status).toBe(400);
    const good = prepareOutputs(keyset().id, [1]).map((p) => p.output);
    expect((await post('/v1/mint/bolt11', { quote: q.body.quote, outputs: good })).status).toBe(200);
    expect(await post('/v1/mint/bolt11', { quote: q.body.quote, outputs: bad })).toMatchObject({
      status: 400,
      body: { code: 10000 },
    });
  });

  it('melt inputs and change outputs', async () => {
    const invoice = (await new FakeLightningBackend().createInvoice(Amount.of(2), 'outside')).bolt11;
    const quote = await post('/v1/melt/quote/bolt11', { request: invoice, unit: 'sat' });
    expect(quote.status).toBe(200);
    const proofs = await mintProofs(t, [4]);
    const badC = await post('/v1/melt/bolt11', {
      quote: quote.body.quote,
      inputs: proofs.map((p) => ({ ...p, C: offCurve })),
    });
    expect(badC.status).toBe(400);
    const badBlank = await post('/v1/melt/bolt11', {
      quote: quote.body.quote,
      inputs: proofs,
      outputs: [{ amount: 1, id: keyset().id, B_: offCurve }],
    });
    expect(badBlank.status).toBe(400);
  });

  it('a P2PK lock to a key that is not a curve point cannot be spent: 4xx', async () => {
    const secret = JSON.stringify([
      'P2PK',
      { nonce: randomBytes(16).toString('hex'), data: offCurve, tags: [] },
    ]);
    const quote = await t.mint.createMintQuote({ amount: 8, unit: 'sat' });
    const prepared = prepareOutputs(keyset().id, [8], () => secret);
    const { signatures } = await t.mint.mint({ quote: quote.quote, outputs: prepared.map((p) => p.output) });
    const proofs = unblind(prepared, signatures, keyset().keys);
    const res = await post('/v1/swap', {
      inputs: proofs.map((p) => ({ ...p, witness: JSON.stringify({ signatures: ['00'.repeat(64)] }) })),
      outputs: prepareOutputs(keyset().id, [8]).map((p) => p.output),
    });
    expect(res.status).toBe(400);
    expect(res.body.code).toEqual(expect.any(Number));
  });
});
