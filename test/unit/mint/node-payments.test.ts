import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MintError } from '../../../src/mint/errors.js';
import type { NodePayments, UnblindedItem } from '../../../src/mint/node-payments.js';
import type { Proof } from '../../../src/mint/types.js';
import { mintProofs, mintsClosedAfterEach, prepareOutputs, split, type TestMint, yOf } from './harness.js';

/**
 * The mint as the node's lease service uses it (node-payments.ts), with the curve work of its
 * payments on the mint's curve threads: verification of what a rent pays, signing of change and
 * refunds ahead of the transaction that books them.
 */
const open = mintsClosedAfterEach();

async function states(t: TestMint, proofs: readonly Proof[]): Promise<string[]> {
  return (await t.mint.checkState(proofs.map((p) => yOf(p.secret)))).states.map((s) => s.state);
}

/** Takes `proofs`, counting the records run (each in the transaction that spends them). */
function taker(payments: NodePayments) {
  const recorded: string[] = [];
  return {
    recorded,
    take: (proofs: readonly Proof[], label: string) =>
      payments.take(proofs, async () => {
        recorded.push(label);
      }),
  };
}

/** A wallet's proof of the node's issued ecash is good when the mint swaps it. */
async function swapsAtTheMint(t: TestMint, proofs: readonly Proof[]): Promise<void> {
  const keyset = t.mint.keys().keysets[0]!;
  const total = proofs.reduce((a, p) => a + p.amount, 0);
  const outputs = prepareOutputs(keyset.id, split(total)).map((p) => p.output);
  await t.mint.swap({ inputs: [...proofs], outputs });
}

const items = (amounts: readonly number[]): UnblindedItem[] =>
  amounts.map((amount) => ({ amount, secret: randomBytes(32).toString('hex') }));

describe('node payments on the curve threads', () => {
  it('takes a payment once, refuses a forged one with 10001, and spends nothing of it', async () => {
    const t = await open({ file: true, curve: { threads: 1 } });
    const payments = t.mint.nodePayments();
    const { recorded, take } = taker(payments);
    const proofs = await mintProofs(t, [4, 4, 4, 4]);
    const forged = [proofs[0]!, { ...proofs[1]!, C: proofs[2]!.C }];
    await expect(take(forged, 'forged')).rejects.toMatchObject({ code: 10001 });
    expect(await states(t, proofs)).toEqual(['UNSPENT', 'UNSPENT', 'UNSPENT', 'UNSPENT']);
    await take(proofs, 'honest');
    expect(await states(t, proofs)).toEqual(['SPENT', 'SPENT', 'SPENT', 'SPENT']);
    await expect(take(proofs, 'again')).rejects.toMatchObject({ code: 11001 });
    expect(recorded).toEqual(['honest']);
  });

  it('refuses a payment with 503 while the curve queue is full, before any transaction; the same proofs pay once room is back', async () => {
    const t = await open({ file: true, curve: { threads: 1, maxQueuedProofs: 4 } });
    const payments = t.mint.nodePayments();
    const { recorded, take } = taker(payments);
    const first = await mintProofs(t, [1, 2, 4, 8]);
    const second = await mintProofs(t, [1, 2, 4, 8]);
    // Asked in one turn: the first fills the queue (4 proofs), the second finds it full.
    const outcomes = await Promise.allSettled([take(first, 'first'), take(second, 'second')]);
    expect(outcomes[0]!.status).toBe('fulfilled');
    expect(outcomes[1]!.status).toBe('rejected');
    const refusal = (outcomes[1] as PromiseRejectedResult).reason;
    expect(refusal).toBeInstanceOf(MintError);
    expect((refusal as MintError).status).toBe(503);
    expect(recorded).toEqual(['first']);
    expect(await states(t, second)).toEqual(['UNSPENT', 'UNSPENT', 'UNSPENT', 'UNSPENT']);
    // Backing off works, and pays once.
    await take(second, 'second');
    expect(await states(t, second)).toEqual(['SPENT', 'SPENT', 'SPENT', 'SPENT']);
    await expect(take(second, 'twice')).rejects.toMatchObject({ code: 11001 });
    expect(recorded).toEqual(['first', 'second']);
  });

  it('books ecash signed ahead with the signatures the transaction would make, for another amount too', async () => {
    const seed = new Uint8Array(randomBytes(32));
    const pooled = await open({ seed, file: true, curve: { threads: 1 } });
    const inThread = await open({ seed, file: true, curve: { threads: 0 } });
    const refund = items([1, 2, 8, 64, 512]);
    const signedAhead = pooled.mint.nodePayments();
    await signedAhead.presign('sat', refund);
    // The amount of one item changed between presign and the booking (another second passed):
    // that one is signed for its new amount, not taken from what was signed ahead.
    const booked = refund.map((item, i) => (i === 2 ? { ...item, amount: 16 } : item));
    await pooled.db.transaction().execute((trx) => signedAhead.issue(trx, 'sat', booked));
    const plain = inThread.mint.nodePayments();
    await inThread.db.transaction().execute((trx) => plain.issue(trx, 'sat', booked));
    const shown = await signedAhead.issued(booked);
    expect(shown).toEqual(await plain.issued(booked));
    expect(shown.map((p) => p.amount)).toEqual([1, 2, 16, 64, 512]);
    await swapsAtTheMint(pooled, shown);
  });

  it('signs a refund ahead even while the curve queue is full (what it signs is owed already)', async () => {
    const t = await open({ file: true, curve: { threads: 1, maxQueuedProofs: 4 } });
    const payments = t.mint.nodePayments();
    const { take } = taker(payments);
    const proofs = await mintProofs(t, [1, 2, 4, 8]);
    const refund = items([1, 2, 4, 8, 16, 32]);
    // The payment fills the queue in this turn; the refund is asked in the same turn all the same.
    await Promise.all([take(proofs, 'rent'), payments.presign('sat', refund)]);
    await t.db.transaction().execute((trx) => payments.issue(trx, 'sat', refund));
    await swapsAtTheMint(t, await payments.issued(refund));
  });
});
