import { settle } from '../../core/input-fees.js';
import type { NodeSecret } from '../../leases/node-secret.js';
import { blindMessage, bytesToHex, parseScalar } from '../../mint/crypto/index.js';
import type { BlindedMessage } from '../../mint/types.js';

/**
 * Blinded outputs the node asks another mint to sign (its kept part, a payer's change, a refund).
 * Secret and blinding factor of each derive from the node secret and a label, so the node can
 * rebuild them after a crash or for a replay and fetch the signatures again with NUT-09 restore:
 * nothing about them is stored, and a lost swap answer loses nothing.
 */
export interface DerivedOutput {
  amount: number;
  /** The proof secret: 64 hex characters, as NUT-00 recommends. */
  secret: string;
  /** Blinding factor r. */
  r: Uint8Array;
  /** B_ = hash_to_curve(secret) + r·G, lower-case hex. */
  B_: string;
}

const encoder = new TextEncoder();

/** Powers of two that add up to `amount`, smallest first. */
export function denominations(amount: bigint): number[] {
  const out: number[] = [];
  for (let bit = 0n; amount >> bit > 0n; bit++) {
    if ((amount >> bit) & 1n) out.push(Number(1n << bit));
  }
  return out;
}

/**
 * The outputs worth `amount` under `label` (e.g. `keep/<payment key>`), one per power of two.
 * Each denomination occurs at most once, so the label and the denomination name an output: the
 * same label and amount always give the same outputs.
 */
export function deriveOutputs(secret: NodeSecret, label: string, amount: bigint): DerivedOutput[] {
  return denominations(amount).map((d) => {
    const proofSecret = secret.derive('ext-output', `${label}/${d}/secret`).toString('hex');
    const r = blindingFactor(secret, `${label}/${d}`);
    return {
      amount: d,
      secret: proofSecret,
      r,
      B_: bytesToHex(blindMessage(encoder.encode(proofSecret), r)),
    };
  });
}

/** The wire form for a keyset (the id only tells the mint which keys to sign with). */
export function blindedMessages(outputs: readonly DerivedOutput[], keysetId: string): BlindedMessage[] {
  return outputs.map((o) => ({ amount: o.amount, id: keysetId, B_: o.B_ }));
}

/**
 * How a payment of `amount` splits at its mint (core/input-fees.ts): the node keeps `keep` (the
 * price, less any input fee the overpayment could not cover), the mint keeps `fee`, the payer gets
 * `change` back (`inputs`: how many proofs). undefined when it is worth less than the price or
 * leaves the node more fee than it bears.
 */
export function splitPayment(
  amount: bigint,
  fee: bigint,
  price: bigint,
  inputs: number,
): { keep: bigint; change: bigint } | undefined {
  const settled = settle(amount, fee, price, inputs);
  return settled && { keep: settled.keep, change: settled.change };
}

function blindingFactor(secret: NodeSecret, subject: string): Uint8Array {
  // An HMAC output is a valid scalar except with probability ~2^-128; count up if not.
  for (let i = 0; i < 16; i++) {
    const r = parseScalar(secret.derive('ext-blind', `${subject}/${i}`).toString('hex'));
    if (r) return r;
  }
  throw new Error('no blinding factor found');
}
