import { randomBytes } from 'node:crypto';
import {
  CheckStateEnum,
  getEncodedToken,
  MintOperationError,
  MintQuoteState,
  type Proof,
  Wallet,
} from '@cashu/cashu-ts';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { bytesToHex, publicKeyOf } from '../../../src/mint/crypto/index.js';
import {
  createTestMint,
  createTestServer,
  listenMint,
  prepareOutputs,
  split,
  type TestMint,
} from '../../unit/mint/harness.js';

/**
 * THE mint integration test: the node's HTTP app on 127.0.0.1 with @cashu/cashu-ts 4.x as the
 * wallet, through the whole life of ecash.
 */
let t: TestMint;
let app: FastifyInstance;
let mintUrl: string;

beforeAll(async () => {
  t = await createTestMint();
  app = await createTestServer(t);
  mintUrl = await listenMint(app);
});
afterAll(async () => {
  await app?.close();
  await t?.close();
});

const sum = (proofs: readonly Proof[]) => proofs.reduce((n, p) => n + Number(p.amount.toBigInt()), 0);

async function codeOf(p: Promise<unknown>): Promise<number | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the mint to refuse').toBeDefined();
  return err instanceof MintOperationError ? err.code : undefined;
}

describe('a cashu-ts 4.x wallet against the mint over HTTP', () => {
  it('mints, sends, receives, checks state, refuses a double spend, melts, restores, and honours P2PK', async () => {
    const seed = new Uint8Array(randomBytes(64));
    const alice = new Wallet(mintUrl, { unit: 'sat', bip39seed: seed });
    await alice.loadMint();
    expect(alice.getMintInfo().isSupported(12)).toMatchObject({ supported: true });

    // Mint quote -> paid (the fake backend settles at once) -> mint.
    const quote = await alice.createMintQuoteBolt11(100);
    expect((await alice.checkMintQuoteBolt11(quote.quote)).state).toBe(MintQuoteState.PAID);
    const minted = await alice.mintProofsBolt11(100, quote.quote);
    expect(sum(minted)).toBe(100);

    // Send 21 (a split at the mint), receive in a second wallet (a swap).
    const { keep, send } = await alice.send(21, minted);
    expect(sum(send)).toBe(21);
    const token = getEncodedToken({ mint: mintUrl, proofs: send, unit: 'sat' });
    const bob = new Wallet(mintUrl, { unit: 'sat' });
    await bob.loadMint();
    const received = await bob.receive(token);
    expect(sum(received)).toBe(21);

    // The sent proofs are SPENT now; spending them again fails with 11001.
    const states = await alice.checkProofsStates(send);
    expect(states.map((s) => s.state)).toEqual(send.map(() => CheckStateEnum.SPENT));
    const carol = new Wallet(mintUrl, { unit: 'sat' });
    await carol.loadMint();
    expect(await codeOf(carol.receive(token))).toBe(11001);

    // Melt to a BOLT11 invoice of another node, with NUT-08 change for the unused fee reserve.
    const outside = new FakeLightningBackend();
    const invoice = (await outside.createInvoice(Amount.of(30), 'coffee')).bolt11;
    const meltQuote = await alice.createMeltQuoteBolt11(invoice);
    expect(Number(meltQuote.amount.toBigInt())).toBe(30);
    const needed = meltQuote.amount.add(meltQuote.fee_reserve);
    const selected = await alice.send(needed, keep, { includeFees: true });
    const melted = await alice.meltProofsBolt11(meltQuote, selected.send);
    expect(melted.quote.state).toBe('PAID');
    const change = melted.change;
    const aliceNow = [...selected.keep, ...change];
    expect(sum(aliceNow)).toBe(100 - 21 - 30);

    // Restore: a fresh wallet with the same seed finds Alice's deterministic proofs again.
    const restorer = new Wallet(mintUrl, { unit: 'sat', bip39seed: seed });
    await restorer.loadMint();
    const { proofs: restored } = await restorer.batchRestore();
    const restoredSecrets = new Set(restored.map((p) => p.secret));
    for (const p of aliceNow) expect(restoredSecrets.has(p.secret)).toBe(true);
    const restoredStates = await restorer.checkProofsStates(restored);
    const unspent = restored.filter((_, i) => restoredStates[i]!.state === CheckStateEnum.UNSPENT);
    expect(sum(unspent)).toBe(sum(aliceNow));

    // P2PK: locked to a key, only the right signature redeems it.
    const privkey = new Uint8Array(randomBytes(32));
    const pubkey = bytesToHex(publicKeyOf(privkey));
    const locked = await bob.ops.send(8, received).asP2PK({ pubkey }).run();
    const lockedToken = getEncodedToken({ mint: mintUrl, proofs: locked.send, unit: 'sat' });
    const dave = new Wallet(mintUrl, { unit: 'sat' });
    await dave.loadMint();
    // Straight at the mint, without a witness: refused by the mint itself, not only by the wallet.
    const raw = await fetch(`${mintUrl}/v1/swap`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: locked.send.map((p) => ({
          amount: Number(p.amount.toBigInt()),
          id: p.id,
          secret: p.secret,
          C: p.C,
        })),
        outputs: prepareOutputs(locked.send[0]!.id, split(8)).map((o) => o.output),
      }),
    });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toMatchObject({ code: 10001 });
    const wrongKey = bytesToHex(new Uint8Array(randomBytes(32)));
    await expect(dave.receive(lockedToken, { privkey: wrongKey })).rejects.toThrow();
    const unlocked = await dave.receive(lockedToken, { privkey: bytesToHex(privkey) });
    expect(sum(unlocked)).toBe(8);
  });

  it('honours P2PK with SIG_ALL: the signature covers inputs and outputs, so only the key holder swaps', async () => {
    const alice = new Wallet(mintUrl, { unit: 'sat' });
    await alice.loadMint();
    const quote = await alice.createMintQuoteBolt11(16);
    const proofs = await alice.mintProofsBolt11(16, quote.quote);
    const privkey = new Uint8Array(randomBytes(32));
    const pubkey = bytesToHex(publicKeyOf(privkey));
    const locked = await alice.ops.send(10, proofs).asP2PK({ pubkey, sigFlag: 'SIG_ALL' }).run();
    expect(locked.send.every((p) => p.secret.includes('SIG_ALL'))).toBe(true);
    const token = getEncodedToken({ mint: mintUrl, proofs: locked.send, unit: 'sat' });
    const bob = new Wallet(mintUrl, { unit: 'sat' });
    await bob.loadMint();
    const received = await bob.receive(token, { privkey: bytesToHex(privkey) });
    expect(sum(received)).toBe(10);
    const states = await bob.checkProofsStates(locked.send);
    expect(states.map((s) => s.state)).toEqual(locked.send.map(() => CheckStateEnum.SPENT));
  });
});
