import { createHash } from 'node:crypto';
import { schnorr } from '@noble/curves/secp256k1.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { verifySchnorr } from '../../../../src/mint/crypto/index.js';
import { secp } from '../../../../src/mint/crypto/native.js';

const scalar = fc.uint8Array({ minLength: 32, maxLength: 32 }).filter((b) => secp.privateKeyVerify(b));
const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });

describe('native BIP-340 verification agrees with @noble/curves', () => {
  it('accepts every valid signature', () => {
    fc.assert(
      fc.property(scalar, bytes32, bytes32, (sk, msg, aux) => {
        const sig = schnorr.sign(msg, sk, aux);
        const pub = schnorr.getPublicKey(sk);
        expect(verifySchnorr(sig, msg, pub)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('matches noble on tampered signatures, messages and keys', () => {
    fc.assert(
      fc.property(
        scalar,
        scalar,
        bytes32,
        fc.nat({ max: 511 }),
        fc.nat({ max: 2 }),
        (sk, other, msg, bit, what) => {
          const sig = schnorr.sign(msg, sk);
          let pub = schnorr.getPublicKey(sk);
          let m = msg;
          const s = Uint8Array.from(sig);
          if (what === 0) s[bit >> 3] = (s[bit >> 3] ?? 0) ^ (1 << (bit & 7));
          else if (what === 1) m = Uint8Array.from(msg, (b, i) => (i === (bit & 31) ? b ^ 1 : b));
          else pub = schnorr.getPublicKey(other);
          let nobleSays: boolean;
          try {
            nobleSays = schnorr.verify(s, m, pub);
          } catch {
            nobleSays = false;
          }
          expect(verifySchnorr(s, m, pub)).toBe(nobleSays);
          expect(nobleSays).toBe(false);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('matches noble on arbitrary bytes and refuses bad lengths without throwing', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), bytes32, bytes32, (sig, msg, pub) => {
        let nobleSays: boolean;
        try {
          nobleSays = schnorr.verify(sig, msg, pub);
        } catch {
          nobleSays = false;
        }
        expect(verifySchnorr(sig, msg, pub)).toBe(nobleSays);
      }),
      { numRuns: 300 },
    );
    const sk = new Uint8Array(32).fill(3);
    const msg = new Uint8Array(32).fill(4);
    const sig = schnorr.sign(msg, sk);
    const pub = schnorr.getPublicKey(sk);
    expect(verifySchnorr(sig.subarray(1), msg, pub)).toBe(false);
    expect(verifySchnorr(sig, msg.subarray(1), pub)).toBe(false);
    expect(verifySchnorr(sig, msg, Uint8Array.of(2, ...pub))).toBe(false);
    // r = p (out of range) and s = n (out of range).
    const p = Buffer.from('fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f', 'hex');
    const n = Buffer.from('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141', 'hex');
    expect(verifySchnorr(Uint8Array.of(...p, ...sig.subarray(32)), msg, pub)).toBe(false);
    expect(verifySchnorr(Uint8Array.of(...sig.subarray(0, 32), ...n), msg, pub)).toBe(false);
  });

  it('refuses s·G − e·P at infinity (a crafted s = e·d), as noble does', () => {
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const big = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString('hex')}`);
    const bytes = (v: bigint) => Uint8Array.from(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'));
    const tag = createHash('sha256').update('BIP0340/challenge').digest();
    fc.assert(
      fc.property(scalar, bytes32, bytes32, (sk, r, msg) => {
        const pub = schnorr.getPublicKey(sk);
        // d with even-y public key, as BIP-340 signing uses.
        const full = secp.publicKeyCreate(sk, true);
        const d = full[0] === 0x02 ? big(sk) : n - big(sk);
        const e =
          big(createHash('sha256').update(tag).update(tag).update(r).update(pub).update(msg).digest()) % n;
        const s = (e * d) % n;
        fc.pre(s !== 0n);
        const sig = Uint8Array.of(...r, ...bytes(s));
        expect(verifySchnorr(sig, msg, pub)).toBe(false);
      }),
      { numRuns: 30 },
    );
  });
});
