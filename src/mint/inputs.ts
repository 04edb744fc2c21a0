import { checkSpendingConditions } from './conditions/index.js';
import { bytesToHex, hashToCurve, hexToBytes, verifyProofY } from './crypto/index.js';
import { invalidRequest, MintError, MintErrorCode } from './errors.js';
import type { AmountKey, KeysetRegistry } from './keyset-registry.js';
import type { BlindedMessage, Proof } from './types.js';

/** An input that passed the cheap checks: keyset known, denomination, no duplicate. */
export interface CheckedInput {
  proof: Proof;
  keysetId: string;
  key: AmountKey;
  /** the witness as the store keeps it (NUT-07 returns it) */
  witness: string | null;
}

export interface CheckedInputs {
  inputs: CheckedInput[];
  unit: string;
  total: bigint;
  /** NUT-02: ceil(sum of input_fee_ppk / 1000) */
  fee: bigint;
}

/** The spent-proof row of a verified input: Y = hash_to_curve(secret), the unique key of a spend. */
export interface VerifiedInput extends CheckedInput {
  Y: string;
}

const encoder = new TextEncoder();

/** Cheap structural checks of a swap's or melt's inputs, before any curve arithmetic. */
export function checkInputs(
  registry: KeysetRegistry,
  proofs: readonly Proof[],
  maxInputs: number,
): CheckedInputs {
  if (proofs.length === 0) throw invalidRequest('no inputs provided');
  if (proofs.length > maxInputs) {
    throw new MintError(MintErrorCode.maxInputsExceeded, `at most ${maxInputs} inputs per request`);
  }
  const secrets = new Set<string>();
  const inputs: CheckedInput[] = [];
  let unit: string | undefined;
  let total = 0n;
  let ppk = 0;
  for (const proof of proofs) {
    if (secrets.has(proof.secret))
      throw new MintError(MintErrorCode.duplicateInputs, 'duplicate inputs provided');
    secrets.add(proof.secret);
    const keyset = registry.forInput(proof.id);
    if (unit === undefined) unit = keyset.unit;
    else if (unit !== keyset.unit) {
      throw new MintError(MintErrorCode.multipleUnits, 'inputs of multiple units');
    }
    const key = keyset.keys.get(proof.amount);
    if (key === undefined) {
      throw new MintError(
        MintErrorCode.proofVerificationFailed,
        `input amount ${proof.amount} is not a denomination of keyset ${keyset.id}`,
      );
    }
    total += BigInt(proof.amount);
    ppk += keyset.inputFeePpk;
    inputs.push({ proof, keysetId: keyset.id, key, witness: witnessString(proof.witness) });
  }
  return { inputs, unit: unit!, total, fee: (BigInt(ppk) + 999n) / 1000n };
}

/**
 * The expensive part: every input's signature C == k·hash_to_curve(secret), then the NUT-10/11
 * spending conditions of the whole transaction (they see the outputs and, for a melt, the quote).
 */
export function verifyInputs(
  checked: readonly CheckedInput[],
  context: { outputs: readonly BlindedMessage[]; now: number; quoteId?: string },
): VerifiedInput[] {
  const verified: VerifiedInput[] = new Array(checked.length);
  for (let i = 0; i < checked.length; i++) {
    const input = checked[i]!;
    const Y = hashToCurve(encoder.encode(input.proof.secret));
    // C is compared byte for byte with k·Y, compressed: only a valid point can equal it, so C needs
    // no curve check of its own (a square root saved per input).
    const C =
      typeof input.proof.C === 'string' && input.proof.C.length === 66
        ? hexToBytes(input.proof.C)
        : undefined;
    if (C === undefined || !verifyProofY(input.key.privateKey, Y, C)) {
      throw new MintError(MintErrorCode.proofVerificationFailed, 'proof verification failed');
    }
    verified[i] = { ...input, Y: bytesToHex(Y) };
  }
  checkInputConditions(checked, context);
  return verified;
}

/**
 * The NUT-10/11/14 spending conditions of the whole transaction, once every input's signature is
 * verified (they see the outputs and, for a melt, the quote). Throws the MintError of the first
 * condition unmet; inputs without conditions cost one character test each.
 */
export function checkInputConditions(
  checked: readonly CheckedInput[],
  context: { outputs: readonly BlindedMessage[]; now: number; quoteId?: string },
): void {
  if (!checked.some((c) => c.proof.secret.charCodeAt(0) === 0x5b /* '[' */)) return;
  const result = checkSpendingConditions({
    inputs: checked.map((c) => ({ secret: c.proof.secret, C: c.proof.C, witness: c.proof.witness })),
    outputs: context.outputs,
    now: context.now,
    quoteId: context.quoteId,
  });
  if (!result.ok) throw new MintError(result.code as MintErrorCode, result.detail);
}

/** Y = hash_to_curve(secret) as lowercase hex: the key of a spent proof. */
export function yOfSecret(secret: string): string {
  return bytesToHex(hashToCurve(encoder.encode(secret)));
}

function witnessString(witness: Proof['witness']): string | null {
  if (witness === undefined || witness === null) return null;
  return typeof witness === 'string' ? witness : JSON.stringify(witness);
}
