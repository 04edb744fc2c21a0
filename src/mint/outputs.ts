import { bytesToHex, parsePointUncompressed, signBlindedWithDleq } from './crypto/index.js';
import { invalidRequest, MintError, MintErrorCode } from './errors.js';
import type { KeysetRegistry, LoadedKeyset } from './keyset-registry.js';
import type { BlindedMessage, BlindSignature } from './types.js';

/** An output that passed every check but the signing: known keyset, amount, point. */
export interface CheckedOutput {
  keyset: LoadedKeyset;
  amount: number;
  /** canonical lowercase hex (compressed) */
  B_: string;
  /** B_ uncompressed (65 bytes), as the signing multiplies it */
  point: Uint8Array;
}

/**
 * Checks outputs before any crypto is spent on them: count, duplicates, active keyset of one unit,
 * denominations of that keyset (unless `blank`: NUT-08 amounts are the mint's to fill), points on
 * the curve. Returns them with their total.
 */
export function checkOutputs(
  registry: KeysetRegistry,
  outputs: readonly BlindedMessage[],
  opts: { maxOutputs: number; unit: string; blank?: boolean },
): { outputs: CheckedOutput[]; total: bigint } {
  if (outputs.length > opts.maxOutputs) {
    throw new MintError(MintErrorCode.maxOutputsExceeded, `at most ${opts.maxOutputs} outputs per request`);
  }
  const seen = new Set<string>();
  const checked: CheckedOutput[] = [];
  let total = 0n;
  for (const output of outputs) {
    const keyset = registry.forOutput(output.id);
    if (keyset.unit !== opts.unit) {
      throw new MintError(MintErrorCode.unitMismatch, `outputs must be in ${opts.unit}, not ${keyset.unit}`);
    }
    if (!opts.blank && !keyset.keys.has(output.amount)) {
      throw invalidRequest(`output amount ${output.amount} is not a denomination of keyset ${keyset.id}`);
    }
    const point = typeof output.B_ === 'string' ? parsePointUncompressed(output.B_) : undefined;
    if (point === undefined) throw invalidRequest('B_ is not a point on the curve');
    // A valid compressed point's hex, lowercased, is its canonical form.
    const B_ = output.B_.toLowerCase();
    if (seen.has(B_)) throw new MintError(MintErrorCode.duplicateOutputs, 'duplicate outputs provided');
    seen.add(B_);
    if (!opts.blank) total += BigInt(output.amount);
    checked.push({ keyset, amount: opts.blank ? 0 : output.amount, B_, point });
  }
  return { outputs: checked, total };
}

/** C_ = k·B_ with its NUT-12 DLEQ proof, for every output (amount already set). */
export function signOutputs(outputs: readonly CheckedOutput[]): BlindSignature[] {
  const signatures: BlindSignature[] = new Array(outputs.length);
  for (let i = 0; i < outputs.length; i++) {
    const output = outputs[i]!;
    const key = output.keyset.keys.get(output.amount);
    if (key === undefined) throw new Error(`no key for amount ${output.amount}`);
    const { C_, dleq } = signBlindedWithDleq(key.privateKey, output.point, key.publicKeyFull);
    signatures[i] = {
      amount: output.amount,
      id: output.keyset.id,
      C_: bytesToHex(C_),
      dleq: { e: bytesToHex(dleq.e), s: bytesToHex(dleq.s) },
    };
  }
  return signatures;
}

/**
 * NUT-08: imprints `change` into blank outputs as powers of two (ascending, in the outputs' order);
 * if the wallet sent too few blanks, the smallest pieces are the ones left out. Returns the outputs
 * that carry a value; the rest are not signed.
 */
export function imprintChange(blanks: readonly CheckedOutput[], change: bigint): CheckedOutput[] {
  if (change <= 0n || blanks.length === 0) return [];
  const pieces: number[] = [];
  let rest = change;
  // Largest first so that a shortfall of blanks drops the small pieces.
  const maxOrder = Math.min(...blanks.map((b) => b.keyset.maxOrder));
  for (let bit = maxOrder - 1; bit >= 0 && pieces.length < blanks.length; bit--) {
    const value = 1n << BigInt(bit);
    while (rest >= value && pieces.length < blanks.length) {
      pieces.push(Number(value));
      rest -= value;
    }
  }
  pieces.sort((a, b) => a - b);
  return pieces.map((amount, i) => ({ ...blanks[i]!, amount }));
}
