/**
 * NUT-11 P2PK lock conditions (shared by NUT-14 HTLC, which adds a hash lock): tag parsing per
 * the current spec, witness parsing, and the two multisig pathways.
 */
import { createHash } from 'node:crypto';
import { parsePoint } from '../crypto/bdhke.js';
import { hexToBytes } from '../crypto/hex.js';
import { verifySchnorr } from '../crypto/schnorr.js';
import { tagValues, type WellKnownSecret } from './nut-10.js';
import { verifyHashLock } from './nut-14.js';

export type SigFlag = 'SIG_INPUTS' | 'SIG_ALL';
export type LockKind = 'P2PK' | 'HTLC';

/** The lock of one P2PK or HTLC secret, validated. Keys are x-only (32 bytes), as BIP-340 uses them. */
export interface LockConditions {
  kind: LockKind;
  sigflag: SigFlag;
  /** Unix seconds; undefined when absent or not a valid unix time (a permanent lock). */
  locktime: number | undefined;
  /** Locktime-multisig keys: `data` + `pubkeys` for P2PK, `pubkeys` only for HTLC. */
  mainKeys: Uint8Array[];
  nSigs: number;
  refundKeys: Uint8Array[];
  nSigsRefund: number;
  /** HTLC only: SHA256 hash lock from `data`. */
  hashLock: Uint8Array | undefined;
}

export interface Witness {
  /** 64-byte BIP-340 signatures, duplicates removed. */
  signatures: Uint8Array[];
  /** HTLC preimage (32 bytes), if given. */
  preimage: Uint8Array | undefined;
}

export interface WitnessLimits {
  /** Longest witness JSON string. Default 16384. */
  maxWitnessLength: number;
  /** Most signatures in one witness. Default 64. */
  maxSignatures: number;
}

export const DEFAULT_WITNESS_LIMITS: WitnessLimits = { maxWitnessLength: 16_384, maxSignatures: 64 };

type Parsed<T> = { ok: true; value: T } | { ok: false; detail: string };

const ONCE_TAGS = ['sigflag', 'pubkeys', 'n_sigs', 'locktime', 'refund', 'n_sigs_refund'] as const;
const POSITIVE_INT_RE = /^[1-9][0-9]{0,5}$/;
const LOCKTIME_RE = /^[0-9]{1,15}$/;

/** Validates the lock of a P2PK or HTLC secret; anything the spec calls malformed is refused. */
export function parseLockConditions(secret: WellKnownSecret): Parsed<LockConditions> {
  const bad = (detail: string): Parsed<LockConditions> => ({
    ok: false,
    detail: `malformed ${secret.kind} secret: ${detail}`,
  });
  if (secret.kind !== 'P2PK' && secret.kind !== 'HTLC') return bad('unknown kind');
  for (const name of ONCE_TAGS) {
    if (secret.tags.filter((t) => t[0] === name).length > 1) return bad(`tag ${name} appears more than once`);
  }

  const sigflagValues = tagValues(secret, 'sigflag');
  let sigflag: SigFlag = 'SIG_INPUTS';
  if (sigflagValues !== undefined) {
    const [flag] = sigflagValues;
    if (sigflagValues.length !== 1 || (flag !== 'SIG_INPUTS' && flag !== 'SIG_ALL'))
      return bad('invalid sigflag');
    sigflag = flag;
  }

  let hashLock: Uint8Array | undefined;
  const mainKeyHexes: string[] = [];
  if (secret.kind === 'P2PK') {
    mainKeyHexes.push(secret.data);
  } else {
    hashLock = secret.data.length === 64 ? hexToBytes(secret.data) : undefined;
    if (hashLock === undefined) return bad('data must be a 32-byte hex hash');
  }
  mainKeyHexes.push(...(tagValues(secret, 'pubkeys') ?? []));
  const mainKeys = parseKeys(mainKeyHexes);
  if (!mainKeys.ok) return bad(mainKeys.detail);
  const refundKeys = parseKeys(tagValues(secret, 'refund') ?? []);
  if (!refundKeys.ok) return bad(refundKeys.detail);

  const nSigs = parseThreshold(tagValues(secret, 'n_sigs'), mainKeys.value.length);
  if (nSigs === undefined) return bad('n_sigs must be a positive integer no larger than the number of keys');
  const nSigsRefund = parseThreshold(tagValues(secret, 'n_sigs_refund'), refundKeys.value.length);
  if (nSigsRefund === undefined) {
    return bad('n_sigs_refund must be a positive integer no larger than the number of refund keys');
  }

  // NUT-11: a locktime that is not a valid unix time makes the lock permanent, not malformed.
  const locktimeValues = tagValues(secret, 'locktime');
  const locktimeStr = locktimeValues?.length === 1 ? locktimeValues[0] : undefined;
  const locktime =
    locktimeStr !== undefined && LOCKTIME_RE.test(locktimeStr) ? Number(locktimeStr) : undefined;

  return {
    ok: true,
    value: {
      kind: secret.kind,
      sigflag,
      locktime,
      mainKeys: mainKeys.value,
      nSigs,
      refundKeys: refundKeys.value,
      nSigsRefund,
      hashLock,
    },
  };
}

/** Compressed keys → x-only keys; duplicates (by x coordinate, any case) make the secret malformed. */
function parseKeys(hexes: readonly string[]): Parsed<Uint8Array[]> {
  const seen = new Set<string>();
  const keys: Uint8Array[] = [];
  for (const hex of hexes) {
    const point = parsePoint(hex);
    if (point === undefined)
      return { ok: false, detail: 'public keys must be compressed points on the curve' };
    const x = point.subarray(1);
    const id = Buffer.from(x).toString('hex');
    if (seen.has(id)) return { ok: false, detail: 'duplicate public key in a pathway' };
    seen.add(id);
    keys.push(x);
  }
  return { ok: true, value: keys };
}

/** Absent → 1; present → a positive integer ≤ the pathway's key count, else undefined (malformed). */
function parseThreshold(values: string[] | undefined, keyCount: number): number | undefined {
  if (values === undefined) return 1;
  const [v] = values;
  if (values.length !== 1 || v === undefined || !POSITIVE_INT_RE.test(v)) return undefined;
  const n = Number(v);
  return n <= keyCount ? n : undefined;
}

/** Parses Proof.witness (a JSON string, or an object some wallets send); absent means no signatures. */
export function parseWitness(
  witness: unknown,
  limits: WitnessLimits = DEFAULT_WITNESS_LIMITS,
): Parsed<Witness> {
  const bad = (detail: string): Parsed<Witness> => ({ ok: false, detail: `invalid witness: ${detail}` });
  if (witness === undefined || witness === null || witness === '') {
    return { ok: true, value: { signatures: [], preimage: undefined } };
  }
  let obj: unknown = witness;
  if (typeof witness === 'string') {
    if (witness.length > limits.maxWitnessLength) return bad('too long');
    try {
      obj = JSON.parse(witness);
    } catch {
      return bad('not JSON');
    }
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return bad('not an object');
  const { signatures, preimage } = obj as Record<string, unknown>;
  const sigs: Uint8Array[] = [];
  if (signatures !== undefined && signatures !== null) {
    if (!Array.isArray(signatures)) return bad('signatures must be an array');
    if (signatures.length > limits.maxSignatures) return bad('too many signatures');
    const seen = new Set<string>();
    for (const s of signatures) {
      const bytes = typeof s === 'string' && s.length === 128 ? hexToBytes(s) : undefined;
      if (bytes === undefined) return bad('signatures must be 64-byte hex strings');
      const id = Buffer.from(bytes).toString('hex');
      if (!seen.has(id)) sigs.push(bytes);
      seen.add(id);
    }
  }
  let pre: Uint8Array | undefined;
  if (preimage !== undefined && preimage !== null) {
    pre = typeof preimage === 'string' && preimage.length === 64 ? hexToBytes(preimage) : undefined;
    if (pre === undefined) return bad('preimage must be 32-byte hex');
  }
  return { ok: true, value: { signatures: sigs, preimage: pre } };
}

/** Caps the Schnorr verifications one transaction may cause (a witness of bad signatures × many keys). */
export interface SignatureBudget {
  remaining: number;
}

/**
 * How many distinct keys signed `msgHash` among `signatures`, counting up to `needed`. Each
 * signature is tried against the keys not yet matched; every try spends one unit of `budget`.
 * Returns undefined when the budget runs out.
 */
export function countSigners(
  keys: readonly Uint8Array[],
  signatures: readonly Uint8Array[],
  msgHash: Uint8Array,
  needed: number,
  budget: SignatureBudget,
): number | undefined {
  const matched = new Set<number>();
  for (const sig of signatures) {
    if (matched.size >= needed) break;
    for (let i = 0; i < keys.length; i++) {
      if (matched.has(i)) continue;
      if (budget.remaining-- <= 0) return undefined;
      if (verifySchnorr(sig, msgHash, keys[i] as Uint8Array)) {
        matched.add(i);
        break;
      }
    }
  }
  return matched.size;
}

export type UnlockResult = { ok: true } | { ok: false; detail: string };

/**
 * Whether `witness` unlocks `conditions` for `message` (the secret for SIG_INPUTS, the aggregate
 * for SIG_ALL) at time `now`:
 * - main pathway: P2PK needs n_sigs of data+pubkeys; HTLC needs the preimage plus n_sigs of
 *   pubkeys (the preimage alone when there are no pubkeys);
 * - once locktime has passed (now >= locktime): with refund keys, n_sigs_refund of them also
 *   unlock; without refund keys the proof is spendable by anyone.
 */
export function unlocks(
  conditions: LockConditions,
  witness: Witness,
  message: string,
  now: number,
  budget: SignatureBudget,
): UnlockResult {
  const msgHash = new Uint8Array(createHash('sha256').update(message, 'utf8').digest());
  const outOfBudget: UnlockResult = { ok: false, detail: 'too many signature checks in this request' };

  let mainOk: boolean;
  let mainDetail: string;
  if (conditions.kind === 'HTLC' && !verifyHashLock(conditions.hashLock, witness.preimage)) {
    mainOk = false;
    mainDetail = 'HTLC preimage missing or wrong';
  } else if (conditions.kind === 'HTLC' && conditions.mainKeys.length === 0) {
    mainOk = true;
    mainDetail = '';
  } else {
    const n = countSigners(conditions.mainKeys, witness.signatures, msgHash, conditions.nSigs, budget);
    if (n === undefined) return outOfBudget;
    mainOk = n >= conditions.nSigs;
    mainDetail = `${n} of ${conditions.nSigs} required signatures`;
  }
  if (mainOk) return { ok: true };

  const expired = conditions.locktime !== undefined && now >= conditions.locktime;
  if (!expired) return { ok: false, detail: `spending conditions not met: ${mainDetail}` };
  if (conditions.refundKeys.length === 0) return { ok: true };
  const r = countSigners(conditions.refundKeys, witness.signatures, msgHash, conditions.nSigsRefund, budget);
  if (r === undefined) return outOfBudget;
  if (r >= conditions.nSigsRefund) return { ok: true };
  return {
    ok: false,
    detail: `spending conditions not met: ${mainDetail}; refund: ${r} of ${conditions.nSigsRefund} required signatures`,
  };
}
