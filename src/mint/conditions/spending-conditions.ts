/**
 * Enforcement of NUT-10 spending conditions on a transaction's inputs: NUT-11 P2PK (signatures,
 * n_sigs, pubkeys, locktime, refund + n_sigs_refund, SIG_INPUTS and SIG_ALL) and NUT-14 HTLC.
 */

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
}

export type ConditionsResult = { ok: true } | { ok: false; code: number; detail: string };

/** NUT error code for any input whose spending conditions are not met (error_codes.md). */
export const CONDITIONS_NOT_MET_CODE = 10001;

/**
 * Checks every input's spending conditions for one swap or melt. Plain secrets pass; a
 * well-known secret of a kind this mint does not know (neither P2PK nor HTLC) passes too, as
 * NUT-10 allows; a malformed P2PK/HTLC secret or witness fails.
 */
export function checkSpendingConditions(args: CheckSpendingConditionsArgs): ConditionsResult {
  void args;
  throw new Error('not implemented');
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
