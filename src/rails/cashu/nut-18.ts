import type { Amount } from '../../core/amount.js';
import { type CborValue, encodeCbor } from './cbor.js';

/** A NUT-18 payment request as alacarte issues it: amount, unit, accepted mints, no transport (in-band). */
export interface PaymentRequestFields {
  id?: string;
  amount: Amount;
  mints: readonly string[];
  description?: string;
  singleUse?: boolean;
}

/** Encodes `creqA` + base64url(CBOR(request)), the form NUT-24's `X-Cashu` challenge carries. */
export function encodePaymentRequest(fields: PaymentRequestFields): string {
  const raw: { [key: string]: CborValue } = {};
  if (fields.id !== undefined) raw.i = fields.id;
  raw.a = fields.amount.value;
  raw.u = fields.amount.unit;
  if (fields.singleUse !== undefined) raw.s = fields.singleUse;
  raw.m = [...fields.mints];
  if (fields.description !== undefined) raw.d = fields.description;
  return `creqA${Buffer.from(encodeCbor(raw)).toString('base64url')}`;
}
