/**
 * Enforcement of NUT-10 spending conditions on a transaction's inputs: NUT-11 P2PK (signatures,
 * n_sigs, pubkeys, locktime, refund + n_sigs_refund, SIG_INPUTS and SIG_ALL) and NUT-14 HTLC.
 */
import {
  DEFAULT_SECRET_LIMITS,
  parseWellKnownSecret,
  type SecretLimits,
  type WellKnownSecret,
} from './nut-10.js';
import {
  DEFAULT_WITNESS_LIMITS,
  type LockConditions,
  parseLockConditions,
  parseWitness,
  type SignatureBudget,
  unlocks,
  type WitnessLimits,
} from './nut-11.js';

/** An input as it arrives (a NUT-00 Proof); amounts and keyset ids are checked elsewhere. */
export interface ConditionInput {
  secret: string;
  /** Unblinded signature, hex (part of the SIG_ALL message). */
  C: string;
  /** NUT-11/14 witness: a JSON string (the spec's form) or the already-parsed object. */
  witness?: string | { signatures?: unknown; preimage?: unknown } | null | undefined;
}

/** An output (a NUT-00 BlindedMessage); only what the SIG_ALL message covers. */
export interface ConditionOutput {
  amount: bigint | number | string;
  B_: string;
}

export interface CheckSpendingConditionsArgs {
  inputs: readonly ConditionInput[];
  outputs: readonly ConditionOutput[];
  /** The mint's clock, unix seconds (compared with `locktime`). */
  now: number;
  /** For a melt: the quote id, which the SIG_ALL message ends with. */
  quoteId?: string | undefined;
  limits?: Partial<ConditionLimits> | undefined;
}

export interface ConditionLimits extends SecretLimits, WitnessLimits {
  /**
   * Schnorr verifications allowed per transaction: this many per input plus a fixed 1000. An honest
   * k-of-m witness costs at most m + (m-1) + ... tries; the cap stops a witness of many bad
   * signatures against many keys from costing seconds. Default 20.
   */
  signatureChecksPerInput: number;
}

export const DEFAULT_CONDITION_LIMITS: ConditionLimits = {
  ...DEFAULT_SECRET_LIMITS,
  ...DEFAULT_WITNESS_LIMITS,
  signatureChecksPerInput: 20,
};

export type ConditionsResult = { ok: true } | { ok: false; code: number; detail: string };

/** NUT error code for any input whose spending conditions are not met (error_codes.md). */
export const CONDITIONS_NOT_MET_CODE = 10001;

/**
 * Checks every input's spending conditions for one swap or melt. Plain secrets pass; a
 * well-known secret of a kind this mint does not know (neither P2PK nor HTLC) passes too, as
 * NUT-10 allows; a malformed P2PK/HTLC secret or witness fails.
 */
export function checkSpendingConditions(args: CheckSpendingConditionsArgs): ConditionsResult {
  const { inputs, outputs, now, quoteId } = args;
  const limits: ConditionLimits = { ...DEFAULT_CONDITION_LIMITS, ...args.limits };
  const fail = (detail: string): ConditionsResult => ({ ok: false, code: CONDITIONS_NOT_MET_CODE, detail });
  const budget: SignatureBudget = { remaining: inputs.length * limits.signatureChecksPerInput + 1000 };

  const secrets: (WellKnownSecret | undefined)[] = [];
  const locks: (LockConditions | undefined)[] = [];
  for (const [i, input] of inputs.entries()) {
    const parsed = parseWellKnownSecret(input.secret, limits);
    if (!parsed.ok) return fail(`input ${i}: ${parsed.detail}`);
    secrets.push(parsed.secret);
    // NUT-10: kinds this mint does not implement are ordinary secrets.
    if (parsed.secret === undefined || (parsed.secret.kind !== 'P2PK' && parsed.secret.kind !== 'HTLC')) {
      locks.push(undefined);
      continue;
    }
    const lock = parseLockConditions(parsed.secret);
    if (!lock.ok) return fail(`input ${i}: ${lock.detail}`);
    locks.push(lock.value);
  }

  if (locks.some((l) => l?.sigflag === 'SIG_ALL')) {
    // NUT-11: with SIG_ALL, every input carries the same kind, data and tags; the first input's
    // witness signs all inputs and outputs at once.
    const first = secrets[0];
    const firstLock = locks[0];
    if (first === undefined || firstLock === undefined)
      return fail('SIG_ALL: every input must carry the same lock');
    const firstTags = JSON.stringify(first.tags);
    for (const [i, s] of secrets.entries()) {
      if (
        s === undefined ||
        s.kind !== first.kind ||
        s.data !== first.data ||
        JSON.stringify(s.tags) !== firstTags
      ) {
        return fail(`SIG_ALL: input ${i} has a different kind, data or tags than input 0`);
      }
    }
    const witness = parseWitness(inputs[0]?.witness, limits);
    if (!witness.ok) return fail(`input 0: ${witness.detail}`);
    const result = unlocks(firstLock, witness.value, sigAllMessage(inputs, outputs, quoteId), now, budget);
    return result.ok ? { ok: true } : fail(`SIG_ALL: ${result.detail}`);
  }

  for (const [i, lock] of locks.entries()) {
    if (lock === undefined) continue;
    const input = inputs[i] as ConditionInput;
    const witness = parseWitness(input.witness, limits);
    if (!witness.ok) return fail(`input ${i}: ${witness.detail}`);
    const result = unlocks(lock, witness.value, input.secret, now, budget);
    if (!result.ok) return fail(`input ${i}: ${result.detail}`);
  }
  return { ok: true };
}

/**
 * The NUT-11 SIG_ALL message: secret_0 || C_0 || ... || amount_0 || B_0 || ... [|| quote_id].
 */
export function sigAllMessage(
  inputs: readonly Pick<ConditionInput, 'secret' | 'C'>[],
  outputs: readonly ConditionOutput[],
  quoteId?: string,
): string {
  let msg = '';
  for (const input of inputs) msg += input.secret + input.C;
  for (const output of outputs) msg += String(output.amount) + output.B_;
  if (quoteId !== undefined) msg += quoteId;
  return msg;
}
