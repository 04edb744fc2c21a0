import { bytesToHex } from './crypto/index.js';
import { type CurvePool, MAX_WIRE_SECRET_LENGTH } from './curve-pool.js';
import { MintError, MintErrorCode } from './errors.js';
import { type CheckedInput, checkInputConditions, type VerifiedInput, verifyInputs } from './inputs.js';
import { type CheckedOutput, signOutputs } from './outputs.js';
import type { BlindedMessage, BlindSignature } from './types.js';

/**
 * A swap's (or a mint's) curve work: every input verified (C == k·hash_to_curve(secret), then the
 * NUT-10/11/14 conditions of the whole transaction), then every output signed with its DLEQ. On
 * the curve pool's worker threads when there is one, on the event loop otherwise; the same checks,
 * errors and answers either way: 10001 for the first input that fails (no output is signed then),
 * a condition's own code, and a plain Error (a 500) for work that could not run at all.
 */
export async function verifyAndSign(
  pool: CurvePool | undefined,
  inputs: readonly CheckedInput[],
  outputs: readonly CheckedOutput[],
  context: { outputs: readonly BlindedMessage[]; now: number; quoteId?: string },
): Promise<{ verified: VerifiedInput[]; signatures: BlindSignature[] }> {
  // A secret longer than the workers' wire carries (only an in-process caller can send one): here.
  if (pool === undefined || inputs.some((input) => input.proof.secret.length > MAX_WIRE_SECRET_LENGTH)) {
    const verified = verifyInputs(inputs, context);
    return { verified, signatures: signOutputs(outputs) };
  }
  const outcome = await pool.run({
    inputs: inputs.map((input) => ({
      key: pool.indexOf(input.key),
      secret: input.proof.secret,
      C: input.proof.C,
    })),
    outputs: outputs.map((output) => {
      const key = output.keyset.keys.get(output.amount);
      if (key === undefined) throw new Error(`no key for amount ${output.amount}`);
      return { key: pool.indexOf(key), point: output.point };
    }),
  });
  if (!outcome.ok) {
    if ('failedInput' in outcome) {
      throw new MintError(MintErrorCode.proofVerificationFailed, 'proof verification failed');
    }
    throw new Error(outcome.error);
  }
  const verified: VerifiedInput[] = inputs.map((input, i) => ({ ...input, Y: bytesToHex(outcome.Ys[i]!) }));
  checkInputConditions(inputs, context);
  const signatures: BlindSignature[] = outputs.map((output, i) => {
    const s = outcome.signatures[i]!;
    return {
      amount: output.amount,
      id: output.keyset.id,
      C_: bytesToHex(s.C_),
      dleq: { e: bytesToHex(s.e), s: bytesToHex(s.s) },
    };
  });
  return { verified, signatures };
}
