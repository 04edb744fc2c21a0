import { createHash } from 'node:crypto';
import type { Proof as CashuProof } from '@cashu/cashu-ts';
import type { PaymentKey } from '../../core/ids.js';
import type { Proof } from '../../mint/types.js';

/** cashu-ts proofs of a decoded token as the mint's wire proofs, bounded in count and checked in shape. */
export function toMintProofs(proofs: readonly CashuProof[], max: number): Proof[] {
  if (proofs.length === 0 || proofs.length > max) throw new Error('proof count out of range');
  return proofs.map((p) => {
    const amount = p.amount.toNumber();
    if (!Number.isSafeInteger(amount) || amount <= 0) throw new Error('bad amount');
    if (typeof p.secret !== 'string' || typeof p.C !== 'string' || typeof p.id !== 'string')
      throw new Error('bad proof');
    const proof: Proof = { id: p.id, amount, secret: p.secret, C: p.C };
    if (p.witness !== undefined) proof.witness = p.witness as Proof['witness'];
    return proof;
  });
}

/** A mint URL as compared and stored: trimmed, no trailing slash, lower-case. */
export function normalizeMintUrl(url: string): string {
  return url.trim().replace(/\/+$/, '').toLowerCase();
}

/** The payment's idempotency key: sha256 over its proofs' sorted Y points. */
export function paymentKey(Ys: readonly string[]): PaymentKey {
  const hash = createHash('sha256');
  for (const Y of [...Ys].sort()) hash.update(Y);
  return hash.digest('hex') as PaymentKey;
}
