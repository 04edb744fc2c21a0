import { PaymentRequest } from '@cashu/cashu-ts';
import type { Amount } from '../../core/amount.js';

/** A NUT-18 payment request as alacarte issues it: amount, unit, accepted mints, no transport (in-band). */
export interface PaymentRequestFields {
  id?: string;
  amount: Amount;
  mints: readonly string[];
  description?: string;
  singleUse?: boolean;
}

/**
 * Encodes `creqA` + base64url(CBOR(request)), the form NUT-24's `X-Cashu` challenge carries, with
 * the wallet library's own encoder (the one wallets decode it with).
 */
export function encodePaymentRequest(fields: PaymentRequestFields): string {
  return new PaymentRequest(
    undefined,
    fields.id,
    fields.amount.value,
    fields.amount.unit,
    [...fields.mints],
    fields.description,
    fields.singleUse,
  ).toEncodedCreqA();
}
