/**
 * Every crypto result checked against @cashu/cashu-ts (pure-JS noble), an independent
 * implementation, on random inputs.
 */
import {
  blindMessage as ctsBlindMessage,
  createBlindSignature as ctsCreateBlindSignature,
  createDLEQProof as ctsCreateDleq,
  hashToCurve as ctsHashToCurve,
  hasValidDleq as ctsHasValidDleq,
  pointFromHex as ctsPointFromHex,
  unblindSignature as ctsUnblind,
  verifyDLEQProof as ctsVerifyDleq,
  verifyUnblindedSignature as ctsVerifyUnblinded,
} from '@cashu/cashu-ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  blindMessage,
  bytesToHex,
  createDleq,
  hashToCurve,
  publicKeyOf,
  signBlinded,
  signBlindedWithDleq,
  unblindSignature,
  verifyDleq,
  verifyProof,
  verifyProofY,
} from '../../../../src/mint/crypto/index.js';
import { secp } from '../../../../src/mint/crypto/native.js';

type NoblePoint = ReturnType<typeof ctsHashToCurve>;
const toNoble = (p: Uint8Array): NoblePoint => ctsPointFromHex(bytesToHex(p));
const fromNoble = (p: NoblePoint): Uint8Array => p.toBytes(true);
const toBig = (b: Uint8Array) => BigInt(`0x${bytesToHex(b)}`);

/** Valid secp256k1 scalars (0 < k < n). */
const scalar = fc.uint8Array({ minLength: 32, maxLength: 32 }).filter((b) => secp.privateKeyVerify(b));
const secret = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 200 }),
  fc.string({ maxLength: 120 }).map((s) => new TextEncoder().encode(s)),
);
const runs = { numRuns: 60 };

describe('cross-check with cashu-ts', () => {
  it('hash_to_curve gives the same point', () => {
    fc.assert(
      fc.property(secret, (x) => {
        expect(bytesToHex(hashToCurve(x))).toBe(bytesToHex(fromNoble(ctsHashToCurve(x))));
      }),
      { numRuns: 200 },
    );
  });

  it('our blind signatures unblind (cashu-ts wallet) into proofs that cashu-ts and we verify', () => {
    fc.assert(
      fc.property(scalar, secret, (k, x) => {
        const wallet = ctsBlindMessage(x);
        const B_ = fromNoble(wallet.B_);
        const C_ = signBlinded(k, B_);
        const A = publicKeyOf(k);
        const C = ctsUnblind(toNoble(C_), wallet.r, toNoble(A));
        expect(ctsVerifyUnblinded({ C, secret: x, id: '00' }, k)).toBe(true);
        expect(verifyProof(k, x, fromNoble(C))).toBe(true);
        expect(verifyProofY(k, hashToCurve(x), fromNoble(C))).toBe(true);
        // Our own wallet-side helpers agree with cashu-ts's.
        const rBytes = Uint8Array.from(Buffer.from(wallet.r.toString(16).padStart(64, '0'), 'hex'));
        expect(bytesToHex(blindMessage(x, rBytes))).toBe(bytesToHex(B_));
        expect(bytesToHex(unblindSignature(C_, rBytes, A))).toBe(bytesToHex(fromNoble(C)));
      }),
      runs,
    );
  });

  it('cashu-ts-made signatures and proofs verify with ours; wrong key or secret fails', () => {
    fc.assert(
      fc.property(scalar, scalar, secret, (k, other, x) => {
        fc.pre(bytesToHex(k) !== bytesToHex(other));
        const wallet = ctsBlindMessage(x);
        const { C_ } = ctsCreateBlindSignature(wallet.B_, k, '00');
        expect(bytesToHex(signBlinded(k, fromNoble(wallet.B_)))).toBe(bytesToHex(fromNoble(C_)));
        const C = fromNoble(ctsUnblind(C_, wallet.r, toNoble(publicKeyOf(k))));
        expect(verifyProof(k, x, C)).toBe(true);
        expect(verifyProof(other, x, C)).toBe(false);
        expect(verifyProof(k, Uint8Array.of(...x, 0), C)).toBe(false);
      }),
      runs,
    );
  });

  it('DLEQ: ours equals cashu-ts (same deterministic nonce), each verifies with the other', () => {
    fc.assert(
      fc.property(scalar, secret, (k, x) => {
        const B_ = fromNoble(ctsBlindMessage(x).B_);
        const A = publicKeyOf(k);
        const { C_, dleq } = signBlindedWithDleq(k, B_, A);
        expect(bytesToHex(C_)).toBe(bytesToHex(signBlinded(k, B_)));
        expect(ctsVerifyDleq(dleq, toNoble(B_), toNoble(C_), toNoble(A))).toBe(true);
        const theirs = ctsCreateDleq(toNoble(B_), k);
        expect(bytesToHex(theirs.e)).toBe(bytesToHex(dleq.e));
        expect(bytesToHex(theirs.s)).toBe(bytesToHex(dleq.s));
        expect(verifyDleq(A, B_, C_, theirs.e, theirs.s)).toBe(true);
        expect(verifyDleq(A, B_, signBlinded(k, A), dleq.e, dleq.s)).toBe(false);
      }),
      runs,
    );
  });

  it('DLEQ with an explicit random nonce verifies with cashu-ts', () => {
    fc.assert(
      fc.property(scalar, scalar, secret, (k, r, x) => {
        const B_ = fromNoble(ctsBlindMessage(x).B_);
        const C_ = signBlinded(k, B_);
        const A = publicKeyOf(k);
        const dleq = createDleq(k, B_, C_, r);
        expect(ctsVerifyDleq(dleq, toNoble(B_), toNoble(C_), toNoble(A))).toBe(true);
        expect(verifyDleq(A, B_, C_, dleq.e, dleq.s)).toBe(true);
      }),
      runs,
    );
  });

  it('a proof carrying our DLEQ and its r passes cashu-ts hasValidDleq (Carol receiving a token)', () => {
    fc.assert(
      fc.property(scalar, fc.string({ minLength: 1, maxLength: 64 }), (k, secretText) => {
        const x = new TextEncoder().encode(secretText);
        const wallet = ctsBlindMessage(x);
        const A = publicKeyOf(k);
        const { C_, dleq } = signBlindedWithDleq(k, fromNoble(wallet.B_));
        const C = unblindSignature(
          C_,
          Uint8Array.from(Buffer.from(wallet.r.toString(16).padStart(64, '0'), 'hex')),
          A,
        );
        const proof = {
          id: '00',
          amount: 8,
          secret: secretText,
          C: bytesToHex(C),
          dleq: { e: bytesToHex(dleq.e), s: bytesToHex(dleq.s), r: wallet.r.toString(16).padStart(64, '0') },
        };
        const keyset = { id: '00', keys: { '8': bytesToHex(A) } };
        type Args = Parameters<typeof ctsHasValidDleq>;
        expect(ctsHasValidDleq(proof as unknown as Args[0], keyset as unknown as Args[1])).toBe(true);
        expect(toBig(dleq.s)).toBeGreaterThan(0n);
      }),
      { numRuns: 20 },
    );
  });
});
