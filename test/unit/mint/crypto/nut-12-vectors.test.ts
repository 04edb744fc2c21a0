import { describe, expect, it } from 'vitest';
import {
  blindMessage,
  bytesToHex,
  createDleq,
  dleqNonce,
  hashE,
  hexToBytes,
  parsePoint,
  publicKeyOf,
  signBlinded,
  verifyDleq,
  verifyProofDleq,
} from '../../../../src/mint/crypto/index.js';
import { secp } from '../../../../src/mint/crypto/native.js';
import { codeBlocks, keyValues, readVectorFile } from './vectors.js';

const blocks = codeBlocks(readVectorFile('12-tests.md'));
const under = (heading: string) => blocks.filter((b) => b.headings.includes(heading));
const kv = (body: string) => Object.fromEntries(keyValues(body));
const hex = (s: string | undefined) => {
  const b = hexToBytes(s ?? '');
  if (b === undefined) throw new Error(`bad hex in vector: ${s}`);
  return b;
};
const point = (s: string | undefined) => {
  const p = parsePoint(s ?? '');
  if (p === undefined) throw new Error(`bad point in vector: ${s}`);
  return p;
};
/** A copy of a 32-byte array with one bit flipped. */
const flip = (b: Uint8Array, bit = 0) => {
  const c = Uint8Array.from(b);
  c[31 - (bit >> 3)] = (c[31 - (bit >> 3)] ?? 0) ^ (1 << (bit & 7));
  return c;
};

describe('NUT-12 vectors', () => {
  it('hash_e of R1, R2, K, C_ is the listed digest', () => {
    const [inputs, output] = under('`hash_e` function');
    const i = kv(inputs?.body ?? '');
    const expected = /:\s*"?([0-9a-f]{64})"?/.exec(output?.body ?? '')?.[1];
    expect(expected).toBeDefined();
    expect(bytesToHex(hashE([point(i.R1), point(i.R2), point(i.K), point(i.C_)]))).toBe(expected);
  });

  it('deterministic nonce: reproduces e and s exactly, and they verify', () => {
    const [inputs, output] = under('Deterministic nonce derivation');
    const i = kv(inputs?.body ?? '');
    const o = kv(output?.body ?? '');
    const a = hex(i.a);
    const [A, B_, C_] = [point(i.A), point(i.B_), point(i.C_)];
    expect(bytesToHex(publicKeyOf(a))).toBe(i.A);
    expect(bytesToHex(signBlinded(a, B_))).toBe(i.C_);
    for (const withA of [undefined, A]) {
      const { e, s } = createDleq(a, B_, C_, undefined, withA);
      expect(bytesToHex(e)).toBe(o.e);
      expect(bytesToHex(s)).toBe(o.s);
    }
    expect(verifyDleq(A, B_, C_, hex(o.e), hex(o.s))).toBe(true);
    // The nonce is the one the vector implies: a fixed explicit nonce gives the same proof.
    const r = dleqNonce(a, A, B_, C_);
    expect(bytesToHex(createDleq(a, B_, C_, r).s)).toBe(o.s);
  });

  it('DLEQ on a BlindSignature: the valid proof verifies, any tampering fails', () => {
    const [keys, sig] = under('DLEQ verification on `BlindSignature`');
    const i = kv(keys?.body ?? '');
    const bs = JSON.parse(sig?.body ?? '') as { C_: string; dleq: { e: string; s: string } };
    const [A, B_, C_] = [point(i.A), point(i.B_), point(bs.C_)];
    const [e, s] = [hex(bs.dleq.e), hex(bs.dleq.s)];
    expect(verifyDleq(A, B_, C_, e, s)).toBe(true);
    expect(verifyDleq(A, B_, C_, flip(e), s)).toBe(false);
    expect(verifyDleq(A, B_, C_, e, flip(s))).toBe(false);
    expect(verifyDleq(publicKeyOf(hex('02'.padStart(64, '0'))), B_, C_, e, s)).toBe(false);
  });

  it('DLEQ on a Proof: Carol reblinds with r and the proof verifies', () => {
    const [keys, proofBlock] = under('DLEQ verification on `Proof`');
    const A = point(kv(keys?.body ?? '').A);
    const proof = JSON.parse(proofBlock?.body ?? '') as {
      secret: string;
      C: string;
      dleq: { e: string; s: string; r: string };
    };
    const r = hex(proof.dleq.r);
    // B_ = Y + r·G, C_ = C + r·A (NUT-12, "Carol verifies").
    const B_ = blindMessage(new TextEncoder().encode(proof.secret), r);
    const C_ = secp.publicKeyCombine([point(proof.C), secp.publicKeyTweakMul(A, r, true)], true);
    expect(verifyDleq(A, B_, C_, hex(proof.dleq.e), hex(proof.dleq.s))).toBe(true);
    const wrongSecret = blindMessage(new TextEncoder().encode(`${proof.secret}x`), r);
    expect(verifyDleq(A, wrongSecret, C_, hex(proof.dleq.e), hex(proof.dleq.s))).toBe(false);
    const dleq = { e: hex(proof.dleq.e), s: hex(proof.dleq.s), r };
    const secretBytes = new TextEncoder().encode(proof.secret);
    expect(verifyProofDleq(A, secretBytes, point(proof.C), dleq)).toBe(true);
    expect(verifyProofDleq(A, secretBytes, point(proof.C), { ...dleq, r: flip(r) })).toBe(false);
    expect(verifyProofDleq(A, secretBytes, point(proof.C), { ...dleq, r: new Uint8Array(32) })).toBe(false);
    expect(verifyProofDleq(A, new TextEncoder().encode('other'), point(proof.C), dleq)).toBe(false);
  });
});
