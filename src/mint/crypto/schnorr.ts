/**
 * BIP-340 Schnorr signature verification on libsecp256k1's point operations.
 *
 * The `secp256k1` package exposes no Schnorr API, and the pure-JS verifier (@noble/curves) manages
 * ~950 verifications/s here: a swap of 1000 P2PK inputs would take a second of CPU, and a witness
 * full of bad signatures against many keys could be made far costlier. The BIP-340 verification
 * equation needs only s·G, e·P, a negation and an addition, all done natively here; the tests
 * cross-check this against @noble/curves on random valid and invalid signatures.
 */
import { createHash } from 'node:crypto';
import { CURVE_ORDER } from './bdhke.js';
import { secp } from './native.js';

const CHALLENGE_TAG_HASH = createHash('sha256').update('BIP0340/challenge', 'utf8').digest();
/** Field prime p: a signature's r must be below it. */
const FIELD_PRIME = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;

/**
 * BIP-340 verify: `sig` 64 bytes (r || s), `msg` 32 bytes, `xOnlyPubkey` 32 bytes. Returns false,
 * never throws, for any malformed input.
 */
export function verifySchnorr(sig: Uint8Array, msg: Uint8Array, xOnlyPubkey: Uint8Array): boolean {
  if (sig.length !== 64 || msg.length !== 32 || xOnlyPubkey.length !== 32) return false;
  // P = lift_x(x): the point with this x and even y, i.e. compressed 02 || x.
  const P = new Uint8Array(33);
  P[0] = 0x02;
  P.set(xOnlyPubkey, 1);
  if (!secp.publicKeyVerify(P)) return false;
  const r = sig.subarray(0, 32);
  const s = sig.subarray(32, 64);
  if (toBigInt(r) >= FIELD_PRIME) return false;
  // s must be < n; s = 0 would make s·G infinity, which no honest signer produces (p ≈ 2^-256).
  if (!secp.privateKeyVerify(s)) return false;
  const e =
    toBigInt(
      createHash('sha256')
        .update(CHALLENGE_TAG_HASH)
        .update(CHALLENGE_TAG_HASH)
        .update(r)
        .update(xOnlyPubkey)
        .update(msg)
        .digest(),
    ) % CURVE_ORDER;
  if (e === 0n) return false;
  try {
    // R = s·G − e·P; valid iff R is not infinity, has even y, and x(R) = r.
    const negEP = secp.publicKeyNegate(secp.publicKeyTweakMul(P, fromBigInt(e), true), true);
    const R = secp.publicKeyCombine([secp.publicKeyCreate(s, true), negEP], false);
    if ((R[64] ?? 1) & 1) return false;
    return Buffer.from(R.subarray(1, 33)).equals(r);
  } catch {
    // s·G = e·P: the sum is infinity.
    return false;
  }
}

function toBigInt(b: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(b).toString('hex')}`);
}

function fromBigInt(v: bigint): Uint8Array {
  return Uint8Array.from(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'));
}
