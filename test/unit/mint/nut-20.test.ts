import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Amount as CashuAmount, signMintQuote } from '@cashu/cashu-ts';
import { schnorr } from '@noble/curves/secp256k1.js';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesToHex, publicKeyOf } from '../../../src/mint/crypto/index.js';
import { MintError } from '../../../src/mint/errors.js';
import { amendedMessageHash, legacyMessageHash, requireMintSignature } from '../../../src/mint/nut-20.js';
import type { BlindedMessage } from '../../../src/mint/types.js';
import { codeBlocks } from './crypto/vectors.js';
import { createTestMint, prepareOutputs, type TestMint } from './harness.js';

const VECTORS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'vectors', '20-test.md');

async function codeOf(run: () => unknown): Promise<number | undefined> {
  try {
    await run();
  } catch (err) {
    if (err instanceof MintError) return err.code;
    throw err;
  }
  return undefined;
}

/** cashu-ts' own NUT-20 signature (the original message of 20.md) over our wire-shaped outputs. */
function walletSignature(priv: string, quote: string, outputs: readonly BlindedMessage[]): string {
  return signMintQuote(
    priv,
    quote,
    outputs.map((o) => ({ ...o, amount: CashuAmount.from(o.amount) })),
  );
}

/** A fresh key pair: private key hex, compressed public key hex. */
function keyPair(): { priv: string; pub: string } {
  for (;;) {
    const priv = new Uint8Array(randomBytes(32));
    try {
      return { priv: bytesToHex(priv), pub: bytesToHex(publicKeyOf(priv)) };
    } catch {
      // not a valid scalar (p ≈ 2^-128): draw again
    }
  }
}

describe('NUT-20 signatures (spec vectors, tests/20-test.md)', () => {
  const blocks = codeBlocks(readFileSync(VECTORS, 'utf8'));
  const pubkey = /`(0[23][0-9a-f]{64})`/.exec(readFileSync(VECTORS, 'utf8'))?.[1] ?? '';
  const requests = blocks
    .filter((b) => b.lang === 'json')
    .map((b) => ({
      valid: !/invalid signature/.test(b.before),
      body: JSON.parse(b.body) as { quote: string; outputs: BlindedMessage[]; signature: string },
    }));
  const expectedMessage = blocks.find((b) => b.body.trim().startsWith('['));

  it('has the vectors it expects', () => {
    expect(pubkey).toMatch(/^0[23]/);
    expect(requests.map((r) => r.valid)).toEqual([true, false]);
    expect(expectedMessage).toBeDefined();
  });

  it('builds the message of the spec and accepts its valid signature, refuses the invalid one (20008)', async () => {
    const valid = requests[0]!.body;
    const bytes = Uint8Array.from(JSON.parse(expectedMessage!.body) as number[]);
    expect(legacyMessageHash(valid.quote, valid.outputs)).toEqual(
      createHash('sha256').update(bytes).digest(),
    );
    expect(() => requireMintSignature(pubkey, valid.quote, valid.outputs, valid.signature)).not.toThrow();
    const invalid = requests[1]!.body;
    expect(
      await codeOf(() => requireMintSignature(pubkey, invalid.quote, invalid.outputs, invalid.signature)),
    ).toBe(20008);
  });

  it('accepts the amended (domain-tagged, length-framed) message and refuses swapped outputs or amounts', async () => {
    const { priv, pub } = keyPair();
    const outputs = [
      { amount: 1, id: '00456a94ab4e1c46', B_: bytesToHex(publicKeyOf(new Uint8Array(32).fill(3))) },
      { amount: 256, id: '00456a94ab4e1c46', B_: bytesToHex(publicKeyOf(new Uint8Array(32).fill(4))) },
    ];
    const quote = '9d745270-1405-46de-b5c5-e2762b4f5e00';
    const sign = (msg: Uint8Array) => bytesToHex(schnorr.sign(msg, Buffer.from(priv, 'hex')));
    const signature = sign(amendedMessageHash(quote, outputs));
    expect(() => requireMintSignature(pub, quote, outputs, signature)).not.toThrow();
    // The amended message binds the amounts, which the original one did not.
    const otherAmounts = outputs.map((o, i) => ({ ...o, amount: i === 0 ? 256 : 1 }));
    expect(await codeOf(() => requireMintSignature(pub, quote, otherAmounts, signature))).toBe(20008);
    expect(await codeOf(() => requireMintSignature(pub, quote, [...outputs].reverse(), signature))).toBe(
      20008,
    );
    expect(await codeOf(() => requireMintSignature(pub, 'another-quote', outputs, signature))).toBe(20008);
    // cashu-ts' exported signMintQuote signs the original message: accepted too.
    expect(() =>
      requireMintSignature(pub, quote, outputs, walletSignature(priv, quote, outputs)),
    ).not.toThrow();
  });
});

describe('NUT-20 locked mint quotes at the mint', () => {
  let t: TestMint | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('stores the pubkey, echoes it, and mints only with a signature by its key', async () => {
    t = await createTestMint();
    const { priv, pub } = keyPair();
    const quote = await t.mint.createMintQuote({ amount: 5, unit: 'sat', pubkey: pub.toUpperCase() });
    expect(quote.pubkey).toBe(pub);
    expect((await t.mint.getMintQuote(quote.quote)).pubkey).toBe(pub);
    const row = await t.db
      .selectFrom('mint_mint_quotes')
      .select('pubkey')
      .where('id', '=', quote.quote)
      .executeTakeFirstOrThrow();
    expect(row.pubkey).toBe(pub);

    const keyset = t.mint.keys().keysets[0]!;
    const outputs = prepareOutputs(keyset.id, [4, 1]).map((p) => p.output);
    const mintCode = (signature?: string | null) =>
      codeOf(() => t!.mint.mint({ quote: quote.quote, outputs, signature }));
    expect(await mintCode(undefined)).toBe(20008);
    expect(await mintCode(null)).toBe(20008);
    expect(await mintCode('zz')).toBe(20008);
    expect(await mintCode(walletSignature(keyPair().priv, quote.quote, outputs))).toBe(20008);
    const otherOutputs = prepareOutputs(keyset.id, [4, 1]).map((p) => p.output);
    expect(await mintCode(walletSignature(priv, quote.quote, otherOutputs))).toBe(20008);
    expect((await t.mint.getMintQuote(quote.quote)).state).toBe('PAID');

    const minted = await t.mint.mint({
      quote: quote.quote,
      outputs,
      signature: walletSignature(priv, quote.quote, outputs),
    });
    expect(minted.signatures.map((s) => s.amount)).toEqual([4, 1]);
    expect((await t.mint.getMintQuote(quote.quote)).state).toBe('ISSUED');
  });

  it('refuses a pubkey that is not a compressed point on the curve (20009)', async () => {
    t = await createTestMint();
    const { pub } = keyPair();
    for (const bad of ['', 'zz', pub.slice(2), `04${pub.slice(2)}`, `02${'f'.repeat(64)}`, `${pub}00`]) {
      expect(await codeOf(() => t!.mint.createMintQuote({ amount: 5, unit: 'sat', pubkey: bad })), bad).toBe(
        20009,
      );
    }
  });

  it('leaves an unlocked quote to whoever knows its id: a well-formed signature is accepted, a malformed one refused', async () => {
    t = await createTestMint();
    const keyset = t.mint.keys().keysets[0]!;
    const quote = await t.mint.createMintQuote({ amount: 2, unit: 'sat', pubkey: null });
    expect(quote).not.toHaveProperty('pubkey');
    const outputs = prepareOutputs(keyset.id, [2]).map((p) => p.output);
    expect(await codeOf(() => t!.mint.mint({ quote: quote.quote, outputs, signature: 'not hex' }))).toBe(
      20008,
    );
    const signed = await t.mint.mint({
      quote: quote.quote,
      outputs,
      signature: walletSignature(keyPair().priv, quote.quote, outputs),
    });
    expect(signed.signatures).toHaveLength(1);
  });
});
