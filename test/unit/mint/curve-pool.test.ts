import { randomBytes } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  type CurveJob,
  type CurveOutcome,
  decodeReply,
  encodeBatch,
  runBatch,
} from '../../../src/mint/crypto/curve-batch.js';
import { bytesToHex, hexToBytes, parsePoint, verifyDleq } from '../../../src/mint/crypto/index.js';
import { secp } from '../../../src/mint/crypto/native.js';
import { CurvePool } from '../../../src/mint/curve-pool.js';
import { MintError } from '../../../src/mint/errors.js';
import type { AmountKey } from '../../../src/mint/keyset-registry.js';
import type { MintLogger } from '../../../src/mint/mint-core.js';
import type { BlindSignature, KeysetKeys } from '../../../src/mint/types.js';
import {
  createTestServer,
  mintProofs,
  mintsClosedAfterEach,
  type PreparedOutput,
  prepareOutputs,
  type TestMint,
  unblind,
  yOf,
} from './harness.js';

const open = mintsClosedAfterEach();

function codeOf(result: PromiseSettledResult<unknown>): number | 'ok' {
  if (result.status === 'fulfilled') return 'ok';
  expect(result.reason).toBeInstanceOf(MintError);
  return (result.reason as MintError).code;
}

function expectValidDleqs(
  keyset: KeysetKeys,
  prepared: readonly PreparedOutput[],
  signatures: readonly BlindSignature[],
): void {
  expect(signatures).toHaveLength(prepared.length);
  for (const [i, sig] of signatures.entries()) {
    const ok = verifyDleq(
      parsePoint(keyset.keys[String(sig.amount)]!)!,
      parsePoint(prepared[i]!.output.B_)!,
      parsePoint(sig.C_)!,
      hexToBytes(sig.dleq.e)!,
      hexToBytes(sig.dleq.s)!,
    );
    expect(ok).toBe(true);
  }
}

async function states(t: TestMint, secrets: readonly string[]): Promise<string[]> {
  return (await t.mint.checkState(secrets.map(yOf))).states.map((s) => s.state);
}

/** Calls of `terminate()` on a watched worker: the pool must never make one. */
let terminated = 0;

const exits = new WeakMap<Worker, Promise<number>>();

/** Keeps `worker` in `workers`, notes its exit, and counts (without doing) every `terminate()` of it. */
function watch(workers: Worker[], worker: Worker): void {
  workers.push(worker);
  exits.set(worker, new Promise((resolve) => worker.once('exit', resolve)));
  worker.terminate = async () => {
    terminated++;
    return 0;
  };
}

/** Resolves with the exit code of a watched worker once it has exited. */
function exitOf(worker: Worker): Promise<number> {
  return exits.get(worker)!;
}

/**
 * Makes a worker die from its own code, as a bug in it would, after ~0.1 s or more of work: first
 * a long run of keys to take in (each one a point multiplication), then a key of zero, which the
 * curve code refuses with an exception nothing in the worker catches. What the pool sends in the
 * meantime is held, and never answered.
 */
function dieAfterAWhile(worker: Worker): void {
  worker.postMessage({ keys: new Uint8Array(randomBytes(32 * 8000)) });
  worker.postMessage({ keys: new Uint8Array(32) });
}

/** A logger that keeps what is logged as an error (with its message as `msg`). */
function loggedErrors(): { logger: MintLogger; errors: Array<Record<string, unknown>> } {
  const errors: Array<Record<string, unknown>> = [];
  const none = () => {};
  return {
    errors,
    logger: { debug: none, info: none, warn: none, error: (obj, msg) => errors.push({ ...obj, msg }) },
  };
}

function keyPair(): AmountKey {
  const privateKey = new Uint8Array(randomBytes(32));
  return {
    privateKey,
    publicKeyHex: bytesToHex(secp.publicKeyCreate(privateKey, true)),
    publicKeyFull: secp.publicKeyCreate(privateKey, false),
  };
}

/** What the same job gives on the event loop (the workers run this very code). */
function inThread(keys: readonly AmountKey[], job: CurveJob): CurveOutcome {
  return decodeReply([job], runBatch(keys, encodeBatch([job])))[0]!;
}

describe('Mint curve work on worker threads', () => {
  it('answers exactly what the event loop answers: same signatures, same DLEQ proofs', async () => {
    const seed = new Uint8Array(randomBytes(32));
    const pooled = await open({ seed, curve: { threads: 2 } });
    const inThread = await open({ seed, curve: { threads: 0 } });
    const keyset = pooled.mint.keys().keysets[0]!;
    expect(inThread.mint.keys().keysets[0]!.id).toBe(keyset.id);
    const prepared = prepareOutputs(keyset.id, [1, 2, 4, 8, 16, 32]);
    const outputs = prepared.map((p) => p.output);
    const a = await pooled.mint.swap({ inputs: await mintProofs(pooled, [32, 16, 8, 4, 2, 1]), outputs });
    const b = await inThread.mint.swap({ inputs: await mintProofs(inThread, [32, 16, 8, 4, 2, 1]), outputs });
    // NUT-12 nonces are derived from the key and the points: both paths must give the same bytes.
    expect(a.signatures).toEqual(b.signatures);
    expectValidDleqs(keyset, prepared, a.signatures);
  });

  it('rejects forged inputs with 10001 and spends nothing of them, beside honest swaps batched with them', async () => {
    const t = await open({ file: true, curve: { threads: 1 } });
    const keyset = t.mint.keys().keysets[0]!;
    const proofs = await mintProofs(t, [4, 4, 4, 4, 4, 4]);
    const out = (amounts: number[]) => prepareOutputs(keyset.id, amounts).map((p) => p.output);
    // A valid proof beside one whose C belongs to another secret; a C that is not hex; an honest swap.
    const forged = [proofs[0]!, { ...proofs[1]!, C: proofs[2]!.C }];
    const notHex = [{ ...proofs[3]!, C: `02${'zz'.repeat(32)}` }];
    const honest = [proofs[4]!, proofs[5]!];
    const results = await Promise.allSettled([
      t.mint.swap({ inputs: forged, outputs: out([8]) }),
      t.mint.swap({ inputs: notHex, outputs: out([4]) }),
      t.mint.swap({ inputs: honest, outputs: out([8]) }),
    ]);
    expect(results.map(codeOf)).toEqual([10001, 10001, 'ok']);
    expect(
      await states(
        t,
        proofs.map((p) => p.secret),
      ),
    ).toEqual(['UNSPENT', 'UNSPENT', 'UNSPENT', 'UNSPENT', 'SPENT', 'SPENT']);
  });

  it('spends a proof once when concurrent swaps race for it; the losers get nothing signed', async () => {
    const t = await open({ file: true, curve: { threads: 2 } });
    const keyset = t.mint.keys().keysets[0]!;
    const [proof] = await mintProofs(t, [8]);
    const attempts = Array.from({ length: 12 }, () => prepareOutputs(keyset.id, [8]));
    const results = await Promise.allSettled(
      attempts.map((prepared) => t.mint.swap({ inputs: [proof!], outputs: prepared.map((p) => p.output) })),
    );
    const codes = results.map(codeOf);
    expect(codes.filter((c) => c === 'ok')).toHaveLength(1);
    expect(codes.filter((c) => c !== 'ok')).toEqual(Array(11).fill(11001));
    const winner = codes.indexOf('ok');
    const restored = await t.mint.restore(attempts.flat().map((p) => p.output));
    expect(restored.outputs).toEqual([attempts[winner]![0]!.output]);
  });

  it('redoes the swaps of a worker that dies mid-work on the event loop, answers them, and goes on', async () => {
    const workers: Worker[] = [];
    const logged = loggedErrors();
    // After a death the next worker starts with the next batch: that one dies with it.
    let killNext = false;
    const onWorker = (w: Worker) => {
      watch(workers, w);
      if (killNext) dieAfterAWhile(w);
      killNext = false;
    };
    const u = await open({ curve: { threads: 1, onWorker }, logger: logged.logger });
    const keyset = u.mint.keys().keysets[0]!;
    const inputs = await mintProofs(u, Array(200).fill(1));
    expect(workers).toHaveLength(1);
    // Four swaps of 50 inputs and 50 outputs, each one's worker dying while it holds the swap.
    let left = inputs;
    for (let death = 1; death <= 4; death++) {
      const take = left.slice(0, 50);
      left = left.slice(50);
      const prepared = prepareOutputs(keyset.id, Array(50).fill(1));
      if (death === 1) dieAfterAWhile(workers[0]!);
      else killNext = true;
      const { signatures } = await u.mint.swap({ inputs: take, outputs: prepared.map((p) => p.output) });
      expectValidDleqs(keyset, prepared, signatures);
      expect(
        await states(
          u,
          take.map((p) => p.secret),
        ),
      ).toEqual(Array(50).fill('SPENT'));
      if (death <= 3) {
        // The worker died holding this swap (it was sent before the death), not before it got it.
        expect(logged.errors.at(-1)).toMatchObject({ deaths: death, swaps: 1 });
      }
    }
    // Three deaths: no fourth worker was started; the work stays on the event loop, and is right.
    expect(workers).toHaveLength(3);
    const prepared = prepareOutputs(keyset.id, [2]);
    const fresh = await mintProofs(u, [1, 1]);
    const { signatures } = await u.mint.swap({ inputs: fresh, outputs: prepared.map((p) => p.output) });
    expectValidDleqs(keyset, prepared, signatures);
    expect(terminated).toBe(0);
  });

  it('gives up on a worker that holds work without answering, answers its swaps, and never cuts it off', async () => {
    const workers: Worker[] = [];
    // Every batch takes longer than a millisecond: each worker is taken for stuck once it holds one.
    const t = await open({ curve: { threads: 1, stuckAfterMs: 1, onWorker: (w) => watch(workers, w) } });
    const keyset = t.mint.keys().keysets[0]!;
    let left = await mintProofs(t, Array(60).fill(1));
    for (let i = 0; i < 3; i++) {
      const take = left.slice(0, 20);
      left = left.slice(20);
      const prepared = prepareOutputs(keyset.id, Array(20).fill(1));
      const { signatures } = await t.mint.swap({ inputs: take, outputs: prepared.map((p) => p.output) });
      expectValidDleqs(keyset, prepared, signatures);
    }
    // The mint's own signing and two swaps each lost a worker; after three, no more were started.
    expect(workers).toHaveLength(3);
    // Each was told to exit and did, once done with what it held; none was terminated from outside
    // (inside the native curve code, that aborts the process).
    await Promise.all(workers.map((w) => exitOf(w)));
    expect(terminated).toBe(0);
  });

  it('Mint.close() resolves only once its curve threads have exited (a node closing ends with none left)', async () => {
    const exited: boolean[] = [];
    const onWorker = (w: Worker) => {
      const i = exited.push(false) - 1;
      w.once('exit', () => {
        exited[i] = true;
      });
    };
    const t = await open({ curve: { threads: 2, onWorker } });
    const keyset = t.mint.keys().keysets[0]!;
    const prepared = prepareOutputs(keyset.id, [8, 4, 2, 1]);
    await t.mint.swap({
      inputs: await mintProofs(t, [8, 4, 2, 1]),
      outputs: prepared.map((p) => p.output),
    });
    expect(exited.length).toBeGreaterThan(0);
    await t.mint.close();
    expect(exited).toEqual(exited.map(() => true));
  });

  it('closes with work in flight, again and again: every job answered, every worker exits by itself', async () => {
    const key = keyPair();
    for (let round = 0; round < 12; round++) {
      const workers: Worker[] = [];
      const pool = new CurvePool({ threads: 2, onWorker: (w) => watch(workers, w) });
      const index = pool.indexOf(key);
      const jobs = Array.from({ length: 40 }, () => ({
        inputs: [],
        outputs: [],
        issues: Array.from({ length: 10 }, () => ({ key: index, secret: bytesToHex(randomBytes(16)) })),
      }));
      const outcomes = jobs.map((job) => pool.run(job));
      // Closed on the turn after the jobs went out: the workers hold most of them.
      await new Promise((r) => setImmediate(r));
      await pool.close();
      expect(workers.length).toBeGreaterThan(0);
      await Promise.all(workers.map((w) => exitOf(w)));
      const answers = await Promise.all(outcomes);
      answers.forEach((outcome, i) => {
        expect(outcome).toEqual(inThread([key], jobs[i]!));
      });
      // After close(), on the event loop.
      expect(await pool.run(jobs[0]!)).toEqual(inThread([key], jobs[0]!));
    }
    expect(terminated).toBe(0);
  });

  it('verifies an in-process input whose secret is longer than the wire carries, on the event loop', async () => {
    const t = await open({ curve: { threads: 1 } });
    const keyset = t.mint.keys().keysets[0]!;
    const quote = await t.mint.createMintQuote({ amount: 8, unit: 'sat' });
    const long = prepareOutputs(keyset.id, [8], () => `${'a'.repeat(70_000)}`);
    const minted = await t.mint.mint({ quote: quote.quote, outputs: long.map((p) => p.output) });
    const [proof] = unblind(long, minted.signatures, keyset.keys);
    const prepared = prepareOutputs(keyset.id, [8]);
    const forged = { ...proof!, secret: `${'b'.repeat(70_000)}` };
    await expect(
      t.mint.swap({ inputs: [forged], outputs: prepared.map((p) => p.output) }),
    ).rejects.toMatchObject({
      code: 10001,
    });
    const { signatures } = await t.mint.swap({ inputs: [proof!], outputs: prepared.map((p) => p.output) });
    expectValidDleqs(keyset, prepared, signatures);
  });

  it('refuses swaps beyond its queue with 503 and Retry-After, spending nothing of them', async () => {
    const t = await open({ curve: { threads: 1, maxQueuedProofs: 20 } });
    const app = await createTestServer(t);
    try {
      const keyset = t.mint.keys().keysets[0]!;
      const proofs = await mintProofs(t, Array(40).fill(1));
      const swaps = Array.from({ length: 10 }, (_, i) => ({
        inputs: proofs.slice(i * 4, i * 4 + 4),
        outputs: prepareOutputs(keyset.id, [4]).map((p) => p.output),
      }));
      const answers = await Promise.all(
        swaps.map((body) => app.inject({ method: 'POST', url: '/mint/v1/swap', payload: body })),
      );
      const refused = answers.flatMap((a, i) => (a.statusCode === 503 ? [i] : []));
      const taken = answers.flatMap((a, i) => (a.statusCode === 200 ? [i] : []));
      expect(refused.length).toBeGreaterThan(0);
      expect(taken.length).toBeGreaterThan(0);
      expect(refused.length + taken.length).toBe(10);
      for (const i of refused) {
        expect(answers[i]!.headers['retry-after']).toBe('1');
        expect(answers[i]!.json()).toMatchObject({ code: 10000 });
        expect(
          await states(
            t,
            swaps[i]!.inputs.map((p) => p.secret),
          ),
        ).toEqual(Array(4).fill('UNSPENT'));
      }
      for (const i of taken) {
        expect(
          await states(
            t,
            swaps[i]!.inputs.map((p) => p.secret),
          ),
        ).toEqual(Array(4).fill('SPENT'));
      }
      // Backing off works: the refused swaps, sent again one by one, go through.
      for (const i of refused) {
        const again = await app.inject({ method: 'POST', url: '/mint/v1/swap', payload: swaps[i]! });
        expect(again.statusCode).toBe(200);
      }
    } finally {
      await app.close();
    }
  });
});
