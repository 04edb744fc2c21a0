import { randomBytes } from 'node:crypto';
import type { Brand } from './brand.js';

export type LeaseId = Brand<string, 'LeaseId'>;
/** The lease's bearer credential, shown only to whoever paid; the store keeps only its hash. */
export type BearerSecret = Brand<string, 'BearerSecret'>;
/** Hex sha256 identifying one payment (for Cashu: of its proofs' sorted Y points). */
export type PaymentKey = Brand<string, 'PaymentKey'>;

const LEASE_ID = /^lse_[0-9a-z]{26}$/;

export function newLeaseId(random: (n: number) => Buffer = randomBytes): LeaseId {
  // 16 random bytes in base36 padded to 26 chars: unguessable, URL-safe, fixed length.
  const n = BigInt(`0x${random(16).toString('hex')}`);
  return `lse_${n.toString(36).padStart(26, '0')}` as LeaseId;
}

export function parseLeaseId(input: unknown): LeaseId | undefined {
  return typeof input === 'string' && LEASE_ID.test(input) ? (input as LeaseId) : undefined;
}
