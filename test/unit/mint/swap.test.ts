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
  { path: 'SQLite fast path', sqliteFastPath: true, file: false },
  { path: 'SQLite file: spend worker', sqliteFastPath: true, file: true },
  { path: 'Kysely only', sqliteFastPath: false, file: false },
  // The default runs the curve work on worker threads; this is the same mint without them.
  { path: 'curve work on the event loop', sqliteFastPath: true, file: false, curve: { threads: 0 } },
])('Mint.swap ($path)', ({ sqliteFastPath, file, curve }) => {
  it('swaps proofs for new signatures with valid DLEQ proofs, once', async () => {
    t = await createTestMint({ file, sqliteFastPath, curve });
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
    t = await createTestMint({ file, sqliteFastPath, curve });
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
    t = await createTestMint({ file, sqliteFastPath, curve });
    const [a, b] = [await mintProofs(t, [4]), await mintProofs(t, [4])];
    const keyset = t.mint.keys().keysets[0]!;
    const outputs = prepareOutputs(keyset.id, [4]).map((p) => p.output);
    await t.mint.swap({ inputs: a, outputs });
    await expectCode(t.mint.swap({ inputs: b, outputs }), 11003);
    const states = await t.mint.checkState(b.map((p) => yOf(p.secret)));
    expect(states.states[0]!.state).toBe('UNSPENT');
  });

  it('enforces the input and output count limits', async () => {
    t = await createTestMint({ file, sqliteFastPath, limits: { maxInputs: 2, maxOutputs: 3 } });
    const proofs = [...(await mintProofs(t, [1, 1])), ...(await mintProofs(t, [1, 1]))];
    const keyset = t.mint.keys().keysets[0]!;
    const out = (amounts: number[]) => prepareOutputs(keyset.id, amounts).map((p) => p.output);
    await expectCode(t.mint.swap({ inputs: proofs.slice(0, 3), outputs: out([1, 2]) }), 11014);
    await expectCode(t.mint.swap({ inputs: proofs.slice(0, 2), outputs: out([1, 1, 0, 0]) }), 11015);
    await expect(t.mint.swap({ inputs: proofs.slice(0, 2), outputs: out([2]) })).resolves.toBeDefined();
  });

  it('fails only the double spend among swaps committed together', async () => {
    t = await createTestMint({ file, sqliteFastPath, curve });
    const proofs = await mintProofs(t, [1, 1, 1, 1, 1, 1, 1, 1]);
    const keyset = t.mint.keys().keysets[0]!;
    const out = () => prepareOutputs(keyset.id, [1]).map((p) => p.output);
    // Nine swaps at once (one batch on the fast paths): the first and the last spend the same proof.
    const requests = proofs.map((p) => ({ inputs: [p], outputs: out() }));
    requests.push({ inputs: [proofs[0]!], outputs: out() });
    const outcomes = await Promise.allSettled(requests.map((r) => t.mint.swap(r)));
    const refused = outcomes.filter((o) => o.status === 'rejected');
    expect(refused).toHaveLength(1);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({ code: 11001 });
    expect(outcomes.slice(1, 8).every((o) => o.status === 'fulfilled')).toBe(true);
    const states = await t.mint.checkState(proofs.map((p) => yOf(p.secret)));
    expect(states.states.every((s) => s.state === 'SPENT')).toBe(true);
    // Every answered swap's signatures are there for NUT-09 restore; the refused one's are not.
    for (const [i, o] of outcomes.entries()) {
      const restored = await t.mint.restore(requests[i]!.outputs);
      if (o.status === 'fulfilled') expect(restored.signatures).toEqual(o.value.signatures);
      else expect(restored.signatures).toEqual([]);
    }
  });

  it('commits swaps beside a transaction of the node held across awaits, both intact', async () => {
    t = await createTestMint({ file, sqliteFastPath, curve });
    const [warm, ...proofs] = await mintProofs(t, [1, 1, 1, 1, 1]);
    const keyset = t.mint.keys().keysets[0]!;
    // A first swap, so that the writer (a worker thread on a file) is up before the race.
    await t.mint.swap({ inputs: [warm!], outputs: prepareOutputs(keyset.id, [1]).map((o) => o.output) });
    const prepared = prepareOutputs(keyset.id, [1]);
    let swaps: Promise<unknown>[] = [];
    // A transaction that reads, lets the event loop run (the swaps start and finish their crypto),
    // then writes: on SQLite a commit of another connection in between would fail its write.
    await t.db.transaction().execute(async (trx) => {
      await trx.selectFrom('mint_proofs').select('y').execute();
      swaps = proofs.map((p) =>
        t.mint.swap({ inputs: [p], outputs: prepareOutputs(keyset.id, [1]).map((o) => o.output) }),
      );
      await new Promise((r) => setTimeout(r, 200));
      await trx
        .insertInto('mint_signatures')
        .values({
          b_: prepared[0]!.output.B_,
          keyset_id: keyset.id,
          amount: 1,
          c_: prepared[0]!.output.B_,
          dleq_e: '00'.repeat(32),
          dleq_s: '00'.repeat(32),
          melt_quote_id: null,
          mint_quote_id: null,
          created_at: 0,
        })
        .execute();
    });
    await Promise.all(swaps);
    const states = await t.mint.checkState(proofs.map((p) => yOf(p.secret)));
    expect(states.states.every((s) => s.state === 'SPENT')).toBe(true);
    expect((await t.mint.restore([prepared[0]!.output])).signatures).toHaveLength(1);
  });

  it('answers a retried swap with the first answer (NUT-19), and nothing else with it', async () => {
    t = await createTestMint({ file, sqliteFastPath, curve });
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
