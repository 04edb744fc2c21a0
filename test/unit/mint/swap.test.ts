import { afterEach, describe, expect, it } from 'vitest';
import { hexToBytes, parsePoint, verifyDleq } from '../../../src/mint/crypto/index.js';
import { MintError } from '../../../src/mint/errors.js';
import { createTestMint, mintProofs, prepareOutputs, type TestMint, unblind, yOf } from './harness.js';

let t: TestMint;
afterEach(async () => {
  await t?.close();
});

async function expectCode(p: Promise<unknown>, code: number): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(MintError);
  await p.catch((err: MintError) => expect({ code: err.code, detail: err.message }).toMatchObject({ code }));
}

describe.each([
  { path: 'SQLite fast path', sqliteFastPath: true },
  { path: 'Kysely only', sqliteFastPath: false },
])('Mint.swap ($path)', ({ sqliteFastPath }) => {
  it('swaps proofs for new signatures with valid DLEQ proofs, once', async () => {
    t = await createTestMint({ sqliteFastPath });
    const proofs = await mintProofs(t, [8, 4]);
    const keyset = t.mint.keys().keysets[0]!;
    const prepared = prepareOutputs(keyset.id, [1, 1, 2, 8]);
    const { signatures } = await t.mint.swap({ inputs: proofs, outputs: prepared.map((p) => p.output) });
    expect(signatures.map((s) => s.amount)).toEqual([1, 1, 2, 8]);
    for (const [i, sig] of signatures.entries()) {
      const A = parsePoint(keyset.keys[String(sig.amount)]!)!;
      const ok = verifyDleq(
        A,
        parsePoint(prepared[i]!.output.B_)!,
        parsePoint(sig.C_)!,
        hexToBytes(sig.dleq.e)!,
        hexToBytes(sig.dleq.s)!,
      );
      expect(ok).toBe(true);
    }
    const states = await t.mint.checkState(proofs.map((p) => yOf(p.secret)));
    expect(states.states.map((s) => s.state)).toEqual(['SPENT', 'SPENT']);
    // Spending the same proofs again: 11001, and nothing new is signed.
    const again = prepareOutputs(keyset.id, [4, 8]);
    await expectCode(t.mint.swap({ inputs: proofs, outputs: again.map((p) => p.output) }), 11001);
    const restored = await t.mint.restore(again.map((p) => p.output));
    expect(restored.signatures).toEqual([]);
    // The new proofs are spendable.
    const fresh = unblind(prepared, signatures, keyset.keys);
    const next = prepareOutputs(keyset.id, [4, 8]);
    await expect(t.mint.swap({ inputs: fresh, outputs: next.map((p) => p.output) })).resolves.toBeDefined();
  });

  it('rejects unbalanced, duplicate, foreign and forged requests without spending anything', async () => {
    t = await createTestMint({ sqliteFastPath });
    const proofs = await mintProofs(t, [8, 4]);
    const keyset = t.mint.keys().keysets[0]!;
    const out = (amounts: number[]) => prepareOutputs(keyset.id, amounts).map((p) => p.output);
    await expectCode(t.mint.swap({ inputs: proofs, outputs: out([8, 2]) }), 11005);
    await expectCode(t.mint.swap({ inputs: proofs, outputs: out([8, 8]) }), 11005);
    await expectCode(t.mint.swap({ inputs: [proofs[0]!, proofs[0]!], outputs: out([16]) }), 11007);
    const dup = out([4])[0]!;
    await expectCode(t.mint.swap({ inputs: proofs, outputs: [dup, { ...dup, amount: 8 }] }), 11008);
    await expectCode(t.mint.swap({ inputs: proofs, outputs: out([3, 9]) }), 10000);
    await expectCode(
      t.mint.swap({
        inputs: [{ ...proofs[0]!, id: `01${'ab'.repeat(32)}` }, proofs[1]!],
        outputs: out([8, 4]),
      }),
      12001,
    );
    // Forged signature: C of another proof.
    await expectCode(
      t.mint.swap({ inputs: [{ ...proofs[0]!, C: proofs[1]!.C }, proofs[1]!], outputs: out([8, 4]) }),
      10001,
    );
    // Amount lifted: the signature does not match the other denomination.
    await expectCode(
      t.mint.swap({ inputs: [{ ...proofs[1]!, amount: 8 }, proofs[0]!], outputs: out([8, 8]) }),
      10001,
    );
    const states = await t.mint.checkState(proofs.map((p) => yOf(p.secret)));
    expect(states.states.map((s) => s.state)).toEqual(['UNSPENT', 'UNSPENT']);
  });

  it('refuses an output B_ that was signed before (11003) and keeps the inputs unspent', async () => {
    t = await createTestMint({ sqliteFastPath });
    const [a, b] = [await mintProofs(t, [4]), await mintProofs(t, [4])];
    const keyset = t.mint.keys().keysets[0]!;
    const outputs = prepareOutputs(keyset.id, [4]).map((p) => p.output);
    await t.mint.swap({ inputs: a, outputs });
    await expectCode(t.mint.swap({ inputs: b, outputs }), 11003);
    const states = await t.mint.checkState(b.map((p) => yOf(p.secret)));
    expect(states.states[0]!.state).toBe('UNSPENT');
  });

  it('enforces the input and output count limits', async () => {
    t = await createTestMint({ sqliteFastPath, limits: { maxInputs: 2, maxOutputs: 3 } });
    const proofs = [...(await mintProofs(t, [1, 1])), ...(await mintProofs(t, [1, 1]))];
    const keyset = t.mint.keys().keysets[0]!;
    const out = (amounts: number[]) => prepareOutputs(keyset.id, amounts).map((p) => p.output);
    await expectCode(t.mint.swap({ inputs: proofs.slice(0, 3), outputs: out([1, 2]) }), 11014);
    await expectCode(t.mint.swap({ inputs: proofs.slice(0, 2), outputs: out([1, 1, 0, 0]) }), 11015);
    await expect(t.mint.swap({ inputs: proofs.slice(0, 2), outputs: out([2]) })).resolves.toBeDefined();
  });

  it('answers a retried swap with the first answer (NUT-19), and nothing else with it', async () => {
    t = await createTestMint({ sqliteFastPath });
    const proofs = await mintProofs(t, [2]);
    const keyset = t.mint.keys().keysets[0]!;
    const request = { inputs: proofs, outputs: prepareOutputs(keyset.id, [1, 1]).map((p) => p.output) };
    const first = await t.mint.swap(request);
    const second = await t.mint.swap(request);
    expect(second).toEqual(first);
    // The same inputs with other outputs: a double spend.
    await expectCode(
      t.mint.swap({ inputs: proofs, outputs: prepareOutputs(keyset.id, [1, 1]).map((p) => p.output) }),
      11001,
    );
  });
});

describe('fees (NUT-02 input_fee_ppk)', () => {
  it('charges ceil(sum ppk / 1000) per transaction', async () => {
    t = await createTestMint({ keysets: { inputFeePpk: 100 } });
    const keyset = t.mint.keysets().keysets[0]!;
    expect(keyset.input_fee_ppk).toBe(100);
    const proofs = await mintProofs(t, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const out = (amounts: number[]) => prepareOutputs(keyset.id, amounts).map((p) => p.output);
    // 10 inputs: 1000 ppk = 1 sat
    await expectCode(t.mint.swap({ inputs: proofs.slice(0, 10), outputs: out([2, 8]) }), 11005);
    await t.mint.swap({ inputs: proofs.slice(0, 10), outputs: out([1, 8]) });
    // 1 input at 100 ppk rounds up to 1 sat: nothing left to output
    await t.mint.swap({ inputs: proofs.slice(10), outputs: [] });
    const states = await t.mint.checkState(proofs.map((p) => yOf(p.secret)));
    expect(states.states.every((s) => s.state === 'SPENT')).toBe(true);
  });
});
