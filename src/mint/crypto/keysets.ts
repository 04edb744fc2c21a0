/**
 * NUT-01/NUT-02 keysets: deterministic derivation from the mint's seed, keyset ids, fees.
 *
 * Derivation scheme (alacarte's own; NUT-01 leaves it to the mint). For a keyset of `unit` at
 * rotation `index`, the private key for `amount` is the first 32 bytes of
 *
 *   HMAC-SHA512(key = seed, "alacarte/cashu-mint/keyset/v1|unit:<unit>|index:<index>|amount:<amount>|ctr:<ctr>")
 *
 * with ctr = 0, 1, ... until the bytes are a valid scalar (0 < k < n; a retry happens with
 * probability ~2^-128). Rotation (`alacarte mint rotate`) derives index + 1; older indexes stay
 * derivable, so old keysets keep redeeming. `unit`, `index` and `amount` are written in decimal /
 * as given, so the preimage is unambiguous ('|' and ':' cannot occur in a validated unit).
 */
import { createHash, createHmac } from 'node:crypto';
import { parsePoint } from './bdhke.js';
import { bytesToHex } from './hex.js';
import { secp } from './native.js';

export interface KeyPair {
  /** 32-byte scalar. Never leaves the mint. */
  privateKey: Uint8Array;
  /** 33-byte compressed k·G, published in NUT-01 `keys`. */
  publicKey: Uint8Array;
}

export interface Keyset {
  /** The published keyset id (version 01 by default, see deriveKeyset). */
  id: string;
  unit: string;
  /** True while the mint signs new outputs with it; inactive keysets still redeem. */
  active: boolean;
  /** NUT-02 fee per input in parts per thousand of the unit. */
  inputFeePpk: number;
  /** One key pair per amount, amounts powers of two 1 .. 2^(maxOrder-1). */
  keys: Map<bigint, KeyPair>;
  /** Unix seconds after which the mint no longer honours this keyset (NUT-02), if any. */
  finalExpiry?: number;
  /** Rotation index this keyset was derived at. */
  index: number;
}

export type KeysetIdVersion = '00' | '01';

export interface DeriveKeysetOptions {
  /** The mint seed (at least 32 bytes), kept in the data dir. */
  seed: Uint8Array;
  /** Lowercase unit name, e.g. 'sat'. */
  unit: string;
  /** Rotation index, 0 for the first keyset of a unit. */
  index: number;
  /** Number of amounts: 1, 2, 4, ... 2^(maxOrder-1). Default 64 (as Nutshell), range 1..64. */
  maxOrder?: number;
  /** Default 0. */
  inputFeePpk?: number;
  finalExpiry?: number;
  /** Default true. */
  active?: boolean;
  /**
   * Which id to publish. Default '01' (NUT-02 keyset id V2, the current version, which commits to
   * unit, fee and expiry; cashu-ts 4.x derives and checks these). '00' only for compatibility tests.
   */
  idVersion?: KeysetIdVersion;
}

export const DEFAULT_MAX_ORDER = 64;
const UNIT_RE = /^[a-z][a-z0-9_]{0,15}$/;
const DERIVATION_TAG = 'alacarte/cashu-mint/keyset/v1';

/** The amounts of a keyset with `maxOrder` keys: 1, 2, 4, ..., 2^(maxOrder-1). */
export function keysetAmounts(maxOrder: number = DEFAULT_MAX_ORDER): bigint[] {
  if (!Number.isInteger(maxOrder) || maxOrder < 1 || maxOrder > 64) {
    throw new RangeError(`maxOrder must be an integer in 1..64: ${maxOrder}`);
  }
  return Array.from({ length: maxOrder }, (_, i) => 1n << BigInt(i));
}

/** Derives the private key for one amount (see the module comment for the scheme). */
export function deriveAmountKey(seed: Uint8Array, unit: string, index: number, amount: bigint): Uint8Array {
  for (let ctr = 0; ctr < 256; ctr++) {
    const msg = `${DERIVATION_TAG}|unit:${unit}|index:${index}|amount:${amount}|ctr:${ctr}`;
    const k = new Uint8Array(createHmac('sha512', seed).update(msg, 'utf8').digest().subarray(0, 32));
    if (secp.privateKeyVerify(k)) return k;
  }
  throw new Error('key derivation: no valid scalar in 256 tries');
}

/** Deterministically derives a keyset from the seed; same inputs, same keys and id. */
export function deriveKeyset(options: DeriveKeysetOptions): Keyset {
  const { seed, unit, index } = options;
  const inputFeePpk = options.inputFeePpk ?? 0;
  if (seed.length < 32) throw new RangeError('mint seed must be at least 32 bytes');
  if (!UNIT_RE.test(unit)) throw new RangeError(`invalid unit: ${unit}`);
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`invalid keyset index: ${index}`);
  if (!Number.isSafeInteger(inputFeePpk) || inputFeePpk < 0)
    throw new RangeError(`invalid input_fee_ppk: ${inputFeePpk}`);
  if (
    options.finalExpiry !== undefined &&
    (!Number.isSafeInteger(options.finalExpiry) || options.finalExpiry <= 0)
  ) {
    throw new RangeError(`invalid final expiry: ${options.finalExpiry}`);
  }
  const keys = new Map<bigint, KeyPair>();
  for (const amount of keysetAmounts(options.maxOrder)) {
    const privateKey = deriveAmountKey(seed, unit, index, amount);
    keys.set(amount, { privateKey, publicKey: secp.publicKeyCreate(privateKey, true) });
  }
  const publicKeys = publicKeysOf(keys);
  const id =
    (options.idVersion ?? '01') === '00'
      ? keysetIdV1(publicKeys)
      : keysetIdV2(publicKeys, { unit, inputFeePpk, finalExpiry: options.finalExpiry });
  const keyset: Keyset = { id, unit, active: options.active ?? true, inputFeePpk, keys, index };
  if (options.finalExpiry !== undefined) keyset.finalExpiry = options.finalExpiry;
  return keyset;
}

/** amount → compressed public key. */
export function publicKeysOf(keys: ReadonlyMap<bigint, KeyPair>): Map<bigint, Uint8Array> {
  return new Map([...keys].map(([amount, pair]) => [amount, pair.publicKey]));
}

/** NUT-01 `keys` object: decimal amount → lowercase hex compressed public key, ascending. */
export function keysToJson(keys: ReadonlyMap<bigint, KeyPair | Uint8Array>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [amount, key] of sortedByAmount(keys)) {
    out[amount.toString()] = bytesToHex(key instanceof Uint8Array ? key : key.publicKey);
  }
  return out;
}

/** NUT-02 keyset id version 00 (deprecated V1): "00" + first 14 hex of SHA256(concat sorted pubkeys). */
export function keysetIdV1(publicKeys: ReadonlyMap<bigint, Uint8Array>): string {
  const h = createHash('sha256');
  for (const [, pk] of sortedByAmount(publicKeys)) h.update(pk);
  return `00${h.digest('hex').slice(0, 14)}`;
}

/**
 * NUT-02 keyset id version 01 (V2): "01" + hex SHA256 of
 * "amount:pubkey,..." + "|unit:<unit>" [+ "|input_fee_ppk:<fee>" if non-zero] [+ "|final_expiry:<t>" if set].
 */
export function keysetIdV2(
  publicKeys: ReadonlyMap<bigint, Uint8Array>,
  meta: { unit: string; inputFeePpk?: number | undefined; finalExpiry?: number | undefined },
): string {
  let preimage = sortedByAmount(publicKeys)
    .map(([amount, pk]) => `${amount}:${bytesToHex(pk)}`)
    .join(',');
  preimage += `|unit:${meta.unit.toLowerCase()}`;
  if (meta.inputFeePpk) preimage += `|input_fee_ppk:${meta.inputFeePpk}`;
  if (meta.finalExpiry) preimage += `|final_expiry:${meta.finalExpiry}`;
  return `01${createHash('sha256').update(preimage, 'utf8').digest('hex')}`;
}

const AMOUNT_RE = /^[1-9][0-9]{0,19}$/;
const U64_MAX = (1n << 64n) - 1n;
const MAX_KEYS = 64;

/**
 * Validates a NUT-01 `keys` object from outside (a wallet's view of a keyset): amounts are positive
 * decimal integers within u64 (2^63 must work: no `number`), at most 64 of them, every key a
 * 33-byte compressed point on the curve. Returns undefined for anything else.
 */
export function parseKeysetKeys(json: unknown): Map<bigint, Uint8Array> | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const entries = Object.entries(json);
  if (entries.length === 0 || entries.length > MAX_KEYS) return undefined;
  const out = new Map<bigint, Uint8Array>();
  for (const [amountStr, keyHex] of entries) {
    if (!AMOUNT_RE.test(amountStr)) return undefined;
    const amount = BigInt(amountStr);
    if (amount > U64_MAX) return undefined;
    if (typeof keyHex !== 'string') return undefined;
    const point = parsePoint(keyHex);
    if (point === undefined) return undefined;
    out.set(amount, point);
  }
  return out;
}

/** NUT-02 fee of a transaction: ceil(sum of the inputs' input_fee_ppk / 1000). */
export function feeForInputs(inputFeePpks: Iterable<number>): bigint {
  let sum = 0n;
  for (const ppk of inputFeePpks) sum += BigInt(ppk);
  return (sum + 999n) / 1000n;
}

function sortedByAmount<V>(m: ReadonlyMap<bigint, V>): [bigint, V][] {
  return [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
