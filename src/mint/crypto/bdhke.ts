/**
 * NUT-00 blind Diffie-Hellman key exchange and NUT-12 DLEQ proofs, on libsecp256k1.
 *
 * Points are 33-byte compressed SEC1 `Uint8Array`s, scalars 32-byte big-endian `Uint8Array`s.
 * Every scalar × point, point addition and negation goes through the native library; the only
 * arithmetic done here is reducing a public hash modulo the curve order.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { hexToBytes } from './hex.js';
import { secp } from './native.js';

/** Order n of the secp256k1 group. */
export const CURVE_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const HASH_TO_CURVE_DST = Buffer.from('Secp256k1_HashToCurve_Cashu_', 'utf8');
/** Same bound as the reference implementations; each try succeeds with probability ~1/2. */
const HASH_TO_CURVE_MAX_TRIES = 2 ** 16;
const DLEQ_NONCE_TAG = Buffer.from('Cashu_DLEQ_R_v1', 'utf8');

/** A NUT-12 proof that C_ = k·B_ uses the same k as the public key A = k·G. */
export interface Dleq {
  /** 32-byte challenge: hash_e(R1, R2, A, C_). */
  e: Uint8Array;
  /** 32-byte response: r + e·k mod n. */
  s: Uint8Array;
}

/**
 * NUT-00 hash_to_curve (the domain-separated version):
 * Y = 02 || SHA256(SHA256(DST || secret) || counter_le32) for the first counter that lands on the curve.
 */
export function hashToCurve(secret: Uint8Array): Uint8Array {
  const msgHash = createHash('sha256').update(HASH_TO_CURVE_DST).update(secret).digest();
  const counter = Buffer.alloc(4);
  const candidate = new Uint8Array(33);
  candidate[0] = 0x02;
  for (let i = 0; i < HASH_TO_CURVE_MAX_TRIES; i++) {
    counter.writeUInt32LE(i, 0);
    candidate.set(createHash('sha256').update(msgHash).update(counter).digest(), 1);
    // publicKeyVerify checks x < p and that x³ + 7 is a square, i.e. that 02||x is on the curve.
    if (secp.publicKeyVerify(candidate)) return candidate;
  }
  throw new Error('hash_to_curve: no curve point found');
}

/**
 * Parses an untrusted hex string into a compressed point: exactly 66 hex characters, prefix 02/03,
 * x on the curve (so never the point at infinity). Returns undefined otherwise.
 */
export function parsePoint(hex: string): Uint8Array | undefined {
  if (typeof hex !== 'string' || hex.length !== 66) return undefined;
  const bytes = hexToBytes(hex);
  if (bytes === undefined || (bytes[0] !== 0x02 && bytes[0] !== 0x03)) return undefined;
  return secp.publicKeyVerify(bytes) ? bytes : undefined;
}

/**
 * Same checks as parsePoint, but returns the point uncompressed (65 bytes): one square root in all
 * for a point that will be multiplied next, where parsePoint then a conversion take two.
 */
export function parsePointUncompressed(hex: string): Uint8Array | undefined {
  if (typeof hex !== 'string' || hex.length !== 66) return undefined;
  const bytes = hexToBytes(hex);
  if (bytes === undefined || (bytes[0] !== 0x02 && bytes[0] !== 0x03)) return undefined;
  try {
    return secp.publicKeyConvert(bytes, false);
  } catch {
    // x is not on the curve (or not below p).
    return undefined;
  }
}

/** Parses an untrusted hex scalar: 64 hex characters, 0 < value < n. Returns undefined otherwise. */
export function parseScalar(hex: string): Uint8Array | undefined {
  if (typeof hex !== 'string' || hex.length !== 64) return undefined;
  const bytes = hexToBytes(hex);
  if (bytes === undefined) return undefined;
  return secp.privateKeyVerify(bytes) ? bytes : undefined;
}

/** The compressed public key k·G of a private key. */
export function publicKeyOf(k: Uint8Array): Uint8Array {
  return secp.publicKeyCreate(k, true);
}

/** The mint's blind signature C_ = k·B_ (NUT-00 "signing"). B_ must come from parsePoint; throws otherwise. */
export function signBlinded(k: Uint8Array, B_: Uint8Array): Uint8Array {
  return secp.publicKeyTweakMul(B_, k, true);
}

/** Checks an unblinded signature: C == k·hash_to_curve(secret). */
export function verifyProof(k: Uint8Array, secret: Uint8Array, C: Uint8Array): boolean {
  return verifyProofY(k, hashToCurve(secret), C);
}

/**
 * Same as verifyProof when Y = hash_to_curve(secret) is already known (the mint computes Y anyway,
 * it is the key under which a spent proof is recorded).
 */
export function verifyProofY(k: Uint8Array, Y: Uint8Array, C: Uint8Array): boolean {
  if (C.length !== 33) return false;
  return timingSafeEqual(secp.publicKeyTweakMul(Y, k, true), C);
}

/**
 * NUT-12 hash_e: SHA256 over the concatenated lowercase hex of the uncompressed (65-byte) points.
 * Accepts compressed or uncompressed points.
 */
export function hashE(points: readonly Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of points) {
    const full = p.length === 65 ? p : secp.publicKeyConvert(p, false);
    h.update(Buffer.from(full.buffer, full.byteOffset, full.byteLength).toString('hex'), 'utf8');
  }
  return new Uint8Array(h.digest());
}

/**
 * NUT-12 deterministic nonce: r = HMAC-SHA256(key = k, "Cashu_DLEQ_R_v1" || A || B_ || C_ || ctr)
 * with A, B_, C_ uncompressed, ctr a byte counted up from 0 until 0 < r < n.
 */
export function dleqNonce(k: Uint8Array, A: Uint8Array, B_: Uint8Array, C_: Uint8Array): Uint8Array {
  const data = Buffer.concat([
    DLEQ_NONCE_TAG,
    uncompressed(A),
    uncompressed(B_),
    uncompressed(C_),
    Buffer.alloc(1),
  ]);
  const ctrAt = data.length - 1;
  for (let ctr = 0; ctr < 256; ctr++) {
    data[ctrAt] = ctr;
    const r = new Uint8Array(createHmac('sha256', k).update(data).digest());
    if (secp.privateKeyVerify(r)) return r;
  }
  throw new Error('DLEQ nonce: no valid scalar in 256 tries');
}

/**
 * NUT-12 DLEQ proof for C_ = k·B_. The nonce r is derived deterministically (dleqNonce, as NUT-12
 * recommends: no dependence on an RNG, and equal inputs give the equal proof, so nothing leaks)
 * unless `nonce` is given. `A` (k·G, compressed or not) saves a point multiplication when known.
 */
export function createDleq(
  k: Uint8Array,
  B_: Uint8Array,
  C_: Uint8Array,
  nonce?: Uint8Array,
  A?: Uint8Array,
): Dleq {
  const pub = A ?? secp.publicKeyCreate(k, false);
  const r = nonce ?? dleqNonce(k, pub, B_, C_);
  if (!secp.privateKeyVerify(r)) throw new RangeError('DLEQ nonce must be a scalar in [1, n-1]');
  const R1 = secp.publicKeyCreate(r, false);
  const R2 = secp.publicKeyTweakMul(B_, r, false);
  const e = hashE([R1, R2, pub, C_]);
  // s = r + e·k mod n, natively: (k·e) then (+ r). Both calls work on a copy (they mutate).
  const s = secp.privateKeyTweakMul(Uint8Array.from(k), reduceModN(e));
  secp.privateKeyTweakAdd(s, r);
  return { e, s };
}

/**
 * The mint's per-output work in one call: C_ = k·B_ and its DLEQ proof, sharing the conversions.
 * `A` is k's public key if already known.
 */
export function signBlindedWithDleq(
  k: Uint8Array,
  B_: Uint8Array,
  A?: Uint8Array,
): { C_: Uint8Array; dleq: Dleq } {
  // Decompress B_ once; libsecp256k1 would otherwise redo the square root in every call.
  const bFull = uncompressed(B_);
  const cFull = secp.publicKeyTweakMul(bFull, k, false);
  const dleq = createDleq(k, bFull, cFull, undefined, A === undefined ? undefined : uncompressed(A));
  return { C_: secp.publicKeyConvert(cFull, true), dleq };
}

/**
 * Verifies a NUT-12 DLEQ proof: R1 = s·G − e·A, R2 = s·B_ − e·C_, e == hash_e(R1, R2, A, C_).
 * Returns false (never throws) for malformed input.
 */
export function verifyDleq(
  A: Uint8Array,
  B_: Uint8Array,
  C_: Uint8Array,
  e: Uint8Array,
  s: Uint8Array,
): boolean {
  if (e.length !== 32 || s.length !== 32) return false;
  if (!secp.privateKeyVerify(s)) return false;
  const eMod = reduceModN(e);
  if (!secp.privateKeyVerify(eMod)) return false;
  try {
    const R1 = secp.publicKeyCombine(
      [secp.publicKeyCreate(s, false), secp.publicKeyNegate(secp.publicKeyTweakMul(A, eMod, false), false)],
      false,
    );
    const R2 = secp.publicKeyCombine(
      [
        secp.publicKeyTweakMul(B_, s, false),
        secp.publicKeyNegate(secp.publicKeyTweakMul(C_, eMod, false), false),
      ],
      false,
    );
    return timingSafeEqual(hashE([R1, R2, A, C_]), e);
  } catch {
    // An unparsable point or a sum at infinity: not a valid proof.
    return false;
  }
}

/**
 * NUT-12 check of a DLEQ carried in a Proof (as a receiver of a token does): rebuilds
 * B_ = hash_to_curve(secret) + r·G and C_ = C + r·A from the sender's blinding factor r, then
 * verifies (e, s). Returns false, never throws, for malformed input.
 */
export function verifyProofDleq(
  A: Uint8Array,
  secret: Uint8Array,
  C: Uint8Array,
  dleq: Dleq & { r: Uint8Array },
): boolean {
  if (!secp.privateKeyVerify(dleq.r)) return false;
  try {
    const B_ = blindMessage(secret, dleq.r);
    const C_ = secp.publicKeyCombine([C, secp.publicKeyTweakMul(A, dleq.r, true)], true);
    return verifyDleq(A, B_, C_, dleq.e, dleq.s);
  } catch {
    return false;
  }
}

/**
 * Wallet side, for tests and tools: B_ = hash_to_curve(secret) + r·G.
 */
export function blindMessage(secret: Uint8Array, r: Uint8Array): Uint8Array {
  return secp.publicKeyCombine([hashToCurve(secret), secp.publicKeyCreate(r, true)], true);
}

/** Wallet side, for tests and tools: C = C_ − r·A. */
export function unblindSignature(C_: Uint8Array, r: Uint8Array, A: Uint8Array): Uint8Array {
  return secp.publicKeyCombine([C_, secp.publicKeyNegate(secp.publicKeyTweakMul(A, r, true), true)], true);
}

/** Reduces a 32-byte big-endian number modulo n (only ever applied to public hashes). */
function reduceModN(x: Uint8Array): Uint8Array {
  const v = BigInt(`0x${Buffer.from(x).toString('hex')}`);
  if (v < CURVE_ORDER) return Uint8Array.from(x);
  return Uint8Array.from(Buffer.from((v - CURVE_ORDER).toString(16).padStart(64, '0'), 'hex'));
}

function uncompressed(p: Uint8Array): Uint8Array {
  return p.length === 65 ? p : secp.publicKeyConvert(p, false);
}
