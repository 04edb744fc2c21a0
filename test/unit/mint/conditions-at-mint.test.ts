import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { MintError } from '../../../src/mint/errors.js';
import { createTestMint, prepareOutputs, type TestMint, unblind, yOf } from './harness.js';

let t: TestMint;
afterEach(async () => {
  await t?.close();
});

/** Mints proofs whose secrets the test chooses (e.g. NUT-10 well-known secrets). */
async function mintWithSecrets(t: TestMint, amounts: number[], secretOf: (i: number) => string) {
  const quote = await t.mint.createMintQuote({ amount: amounts.reduce((a, b) => a + b, 0), unit: 'sat' });
  const keyset = t.mint.keys().keysets[0]!;
  const prepared = prepareOutputs(keyset.id, amounts, secretOf);
  const { signatures } = await t.mint.mint({ quote: quote.quote, outputs: prepared.map((p) => p.output) });
  return unblind(prepared, signatures, keyset.keys);
}

async function codeOf(p: Promise<unknown>): Promise<number | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return err instanceof MintError ? err.code : undefined;
}

describe('spending conditions enforced by the mint on swap inputs', () => {
  it('NUT-14 HTLC: spendable with the preimage only', async () => {
    t = await createTestMint();
    const preimage = randomBytes(32).toString('hex');
    const hash = createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex');
    const secret = JSON.stringify(['HTLC', { nonce: randomBytes(16).toString('hex'), data: hash, tags: [] }]);
    const [proof] = await mintWithSecrets(t, [4], () => secret);
    const keyset = t.mint.keys().keysets[0]!;
    const out = () => prepareOutputs(keyset.id, [4]).map((p) => p.output);
    expect(await codeOf(t.mint.swap({ inputs: [proof!], outputs: out() }))).toBe(10001);
    const wrong = JSON.stringify({ preimage: randomBytes(32).toString('hex') });
    expect(await codeOf(t.mint.swap({ inputs: [{ ...proof!, witness: wrong }], outputs: out() }))).toBe(
      10001,
    );
    const right = JSON.stringify({ preimage });
    await expect(
      t.mint.swap({ inputs: [{ ...proof!, witness: right }], outputs: out() }),
    ).resolves.toBeDefined();
    const state = await t.mint.checkState([yOf(secret)]);
    expect(state.states[0]).toMatchObject({ state: 'SPENT', witness: right });
  });

  it('a malformed well-known secret is not anyone-can-spend', async () => {
    t = await createTestMint();
    const secret = JSON.stringify(['P2PK', { nonce: 'x', data: 'not a key' }]);
    const [proof] = await mintWithSecrets(t, [2], () => secret);
    const keyset = t.mint.keys().keysets[0]!;
    const outputs = prepareOutputs(keyset.id, [2]).map((p) => p.output);
    expect(await codeOf(t.mint.swap({ inputs: [proof!], outputs }))).toBe(10001);
  });
});
