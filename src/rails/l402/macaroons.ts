import { createHash, randomBytes } from 'node:crypto';
import { importMacaroons, type Macaroon, newMacaroon } from 'macaroon';
import type { NodeSecret } from '../../leases/node-secret.js';

/**
 * L402 macaroons in Aperture's format (L402 protocol specification, "Macaroon Minting &
 * Verification"): the identifier is version (uint16 big-endian, 0) ‖ payment hash (32 bytes) ‖
 * token id (32 bytes); first-party caveats are `key=value` conditions. The root key of each token
 * derives from the node secret and the token id, so the store keeps no root keys.
 */

/** Caveat conditions this node writes, as `key=value` strings (Aperture's `services`, `<service>_…`). */
export type Conditions = Readonly<Record<string, string>>;

const VERSION = 0;
const IDENTIFIER_BYTES = 2 + 32 + 32;
/** Largest macaroon accepted, base64 characters: ours are well under 1 KiB. */
export const MAX_MACAROON_CHARS = 4096;

export interface MintedMacaroon {
  /** Standard base64 of the binary (V2) macaroon, as `WWW-Authenticate` and `Authorization` carry it. */
  base64: string;
  tokenId: string;
}

/** A new macaroon for `paymentHash` (hex) with `conditions` as first-party caveats, in this order. */
export function mintMacaroon(
  secret: NodeSecret,
  location: string,
  paymentHash: string,
  conditions: Conditions,
  random: (n: number) => Buffer = randomBytes,
): MintedMacaroon {
  const tokenId = random(32);
  const identifier = Buffer.concat([Buffer.from([0, VERSION]), Buffer.from(paymentHash, 'hex'), tokenId]);
  // Plain Uint8Arrays: the library reads whole ArrayBuffers, and Buffers share a pooled one.
  const macaroon = newMacaroon({
    identifier: Uint8Array.from(identifier),
    location,
    rootKey: Uint8Array.from(rootKey(secret, tokenId)),
    version: 2,
  });
  for (const [key, value] of Object.entries(conditions)) macaroon.addFirstPartyCaveat(`${key}=${value}`);
  return { base64: binaryV2(macaroon).toString('base64'), tokenId: tokenId.toString('hex') };
}

/**
 * The macaroon's binary V2 form (libmacaroons' format: version 2, then fields of type ‖ uvarint
 * length ‖ bytes, EOS 0 ending the header, each caveat and the caveat list, then the signature).
 * Written here because the library's `exportBinary` doubles its buffer on every append (3.0.4:
 * `_grow` compares with an undefined capacity): hundreds of MB for three caveats, a RangeError
 * for four. Read back (importMacaroons) and verified by the library itself.
 */
function binaryV2(macaroon: Macaroon): Buffer {
  const out: number[] = [2];
  const field = (type: number, data: Uint8Array) => {
    out.push(type, ...uvarint(data.length), ...data);
  };
  if (macaroon.location) field(1, new TextEncoder().encode(macaroon.location));
  field(2, macaroon.identifier);
  out.push(0);
  for (const caveat of macaroon.caveats) {
    // First-party caveats only: this node adds no others.
    field(2, caveat.identifier);
    out.push(0);
  }
  out.push(0);
  field(6, macaroon.signature);
  return Buffer.from(out);
}

function uvarint(n: number): number[] {
  const bytes: number[] = [];
  let x = n;
  while (x >= 0x80) {
    bytes.push((x & 0x7f) | 0x80);
    x >>>= 7;
  }
  bytes.push(x);
  return bytes;
}

/** A verified macaroon: its payment hash (hex), token id (hex) and caveat conditions. */
export interface VerifiedMacaroon {
  paymentHash: string;
  tokenId: string;
  conditions: Record<string, string>;
}

/**
 * Decodes `base64` and checks that this node signed it (root key from the node secret) with every
 * caveat a `key=value` condition seen once. Returns undefined for anything else: malformed, of
 * another issuer, tampered, another identifier version, or carrying third-party caveats.
 */
export function verifyMacaroon(secret: NodeSecret, base64: string): VerifiedMacaroon | undefined {
  if (base64.length > MAX_MACAROON_CHARS || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(base64)) return undefined;
  try {
    const macaroons = importMacaroons(base64);
    if (macaroons.length !== 1) return undefined;
    const macaroon = macaroons[0];
    if (!macaroon) return undefined;
    const id = Buffer.from(macaroon.identifier);
    if (id.length !== IDENTIFIER_BYTES || id.readUInt16BE(0) !== VERSION) return undefined;
    const tokenId = id.subarray(34);
    const conditions: Record<string, string> = {};
    macaroon.verify(Uint8Array.from(rootKey(secret, tokenId)), (condition) => {
      const eq = condition.indexOf('=');
      if (eq <= 0) return 'not a key=value condition';
      const key = condition.slice(0, eq);
      if (Object.hasOwn(conditions, key)) return `condition ${key} seen twice`;
      conditions[key] = condition.slice(eq + 1);
      return null;
    });
    return { paymentHash: id.subarray(2, 34).toString('hex'), tokenId: tokenId.toString('hex'), conditions };
  } catch {
    return undefined;
  }
}

function rootKey(secret: NodeSecret, tokenId: Buffer): Buffer {
  return secret.derive('l402-root-key', tokenId.toString('hex'));
}

/** sha256 of a hex preimage, hex; undefined when it is not 32 bytes of hex. */
export function paymentHashOf(preimageHex: string): string | undefined {
  if (!/^[0-9a-fA-F]{64}$/.test(preimageHex)) return undefined;
  return createHash('sha256').update(Buffer.from(preimageHex, 'hex')).digest('hex');
}
