/**
 * NUT-20: mint quotes locked to a public key. The wallet names a compressed secp256k1 key in the
 * quote request; minting the quote then needs a BIP-340 Schnorr signature by that key over the
 * SHA-256 of a message that binds the quote id to the outputs, so whoever learns the quote id
 * cannot mint its ecash to their own outputs.
 *
 * Two messages are accepted, both committing to the quote id and every output in request order:
 * - the amended one (nuts PR #375, what cashu-ts 4.8 signs first): the domain tag
 *   `Cashu_MintQuoteSig_v1`, then len32(quote) ‖ quote and, per output, len32(amount) ‖ amount ‖
 *   len32(B_) ‖ B_, where len32 is a 4-byte big-endian length, amount its minimal big-endian
 *   bytes (0 → empty) and B_ the raw 33-byte point;
 * - the original one of 20.md (what wallets signed before): the UTF-8 string quote ‖ B_0 ‖ … ‖
 *   B_(n-1), B_ as the hex the request carries.
 */
import { createHash } from 'node:crypto';
import { hexToBytes, parsePoint, verifySchnorr } from './crypto/index.js';
import { MintError, MintErrorCode } from './errors.js';

const DOMAIN_TAG = Buffer.from('Cashu_MintQuoteSig_v1', 'utf8');

/**
 * The quote's lock as stored: the canonical lowercase hex of a compressed point on the curve.
 * Throws 20009 (NUT-20: pubkey required or invalid) for anything else.
 */
export function requireQuotePubkey(pubkey: string): string {
  const point = parsePoint(pubkey);
  if (point === undefined) {
    throw new MintError(
      MintErrorCode.pubkeyRequired,
      'pubkey must be a compressed secp256k1 public key (33 bytes, hex)',
    );
  }
  return Buffer.from(point).toString('hex');
}

/** SHA-256 of the amended NUT-20 message (see the module comment). */
export function amendedMessageHash(
  quote: string,
  outputs: ReadonlyArray<{ amount: number; B_: string }>,
): Buffer {
  const hash = createHash('sha256').update(DOMAIN_TAG);
  const framed = (bytes: Uint8Array) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    hash.update(len).update(bytes);
  };
  framed(Buffer.from(quote, 'utf8'));
  for (const output of outputs) {
    framed(minimalBigEndian(output.amount));
    framed(hexToBytes(output.B_) ?? Buffer.from(output.B_, 'utf8'));
  }
  return hash.digest();
}

/** SHA-256 of the original NUT-20 message: quote ‖ B_0 ‖ … as one UTF-8 string. */
export function legacyMessageHash(quote: string, outputs: ReadonlyArray<{ B_: string }>): Buffer {
  const hash = createHash('sha256').update(quote, 'utf8');
  for (const output of outputs) hash.update(output.B_, 'utf8');
  return hash.digest();
}

/**
 * Checks the NUT-20 signature of a mint request against the quote's key. Throws 20008 when it is
 * missing, malformed or signs neither message.
 */
export function requireMintSignature(
  pubkey: string,
  quote: string,
  outputs: ReadonlyArray<{ amount: number; B_: string }>,
  signature: string | null | undefined,
): void {
  if (signature === undefined || signature === null) {
    throw new MintError(
      MintErrorCode.signatureInvalid,
      'this quote is locked to a key: a signature is required',
    );
  }
  const sig = signature.length === 128 ? hexToBytes(signature) : undefined;
  const key = hexToBytes(pubkey);
  const xOnly = key?.subarray(1, 33);
  const valid =
    sig !== undefined &&
    xOnly !== undefined &&
    (verifySchnorr(sig, amendedMessageHash(quote, outputs), xOnly) ||
      verifySchnorr(sig, legacyMessageHash(quote, outputs), xOnly));
  if (!valid) throw new MintError(MintErrorCode.signatureInvalid, 'signature for mint request invalid');
}

function minimalBigEndian(amount: number): Uint8Array {
  if (amount === 0) return new Uint8Array();
  const hex = BigInt(amount).toString(16);
  return Buffer.from(hex.length % 2 === 1 ? `0${hex}` : hex, 'hex');
}
