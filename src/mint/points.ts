import { bytesToHex, parsePoint } from './crypto/index.js';
import { invalidRequest } from './errors.js';

/**
 * Every curve point that comes from outside (B_ of outputs, C of proofs, Ys of checkstate, keys in
 * secrets) is parsed before it is used or looked up: one that is not on secp256k1 is a malformed
 * request (NUT error 10000, 400), never a quiet "not found". Returns the canonical lowercase hex.
 */
export function requirePoint(hex: unknown, what: string): string {
  const point = typeof hex === 'string' ? parsePoint(hex) : undefined;
  if (point === undefined) throw invalidRequest(`${what} is not a point on the curve`);
  return bytesToHex(point);
}
