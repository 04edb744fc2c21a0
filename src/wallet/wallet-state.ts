import { z } from 'zod';

/**
 * The wallet file's shape. Amounts are JSON numbers (Cashu denominations are powers of two far
 * below 2^53); everything read back is validated, since a hand-edited or truncated file must fail
 * loudly rather than lose proofs.
 */
const hex = z.string().regex(/^[0-9a-fA-F]+$/);
const amount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const storedProofSchema = z.object({
  mint: z.string().min(1),
  unit: z.string().min(1),
  id: z.string().min(1),
  amount,
  secret: z.string().min(1),
  C: hex,
  dleq: z.object({ e: hex, s: hex, r: hex.optional() }).optional(),
});
export type StoredProof = z.infer<typeof storedProofSchema>;

const counterRangeSchema = z.object({
  keysetId: z.string().min(1),
  start: z.number().int().min(0),
  count: z.number().int().min(0),
});
export type CounterRange = z.infer<typeof counterRangeSchema>;

/** What a payment bought, so that recovery can replay the very same request (same token, same key). */
export const paymentPurposeSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('lease.create'),
    url: z.string().min(1),
    idempotencyKey: z.string().min(1),
    body: z.record(z.string(), z.unknown()),
  }),
  z.object({
    kind: z.literal('lease.extend'),
    url: z.string().min(1),
    idempotencyKey: z.string().min(1),
    leaseId: z.string().min(1),
    seconds: z.number().int().min(1),
  }),
]);
export type PaymentPurpose = z.infer<typeof paymentPurposeSchema>;

/**
 * An operation whose outcome is not yet recorded. Its `inputs` have left the balance; the
 * `counters` it reserved say which deterministic outputs (NUT-13) it may have created, so NUT-09
 * restore can find them again after a crash.
 */
export const pendingOpSchema = z.object({
  id: z.string().min(1),
  kind: z.enum(['swap', 'receive', 'send', 'payment', 'mint', 'melt', 'refund']),
  mint: z.string().min(1),
  unit: z.string().min(1),
  createdAt: z.string(),
  inputs: z.array(storedProofSchema),
  counters: z.array(counterRangeSchema),
  /** receive: the incoming token; payment: the token handed to the server. */
  token: z.string().optional(),
  /** mint and melt: the quote id; mint: its amount. */
  quote: z.string().optional(),
  amount: amount.optional(),
  /** mint: when the quote expires (unix seconds), after which an unpaid quote is dropped. */
  expiry: z.number().int().nullable().optional(),
  purpose: paymentPurposeSchema.optional(),
  /** refund: the lease to stop again (its credential is in leases.json). */
  leaseId: z.string().optional(),
  serverUrl: z.string().optional(),
});
export type PendingOp = z.infer<typeof pendingOpSchema>;
export type OpKind = PendingOp['kind'];

export const walletFileSchema = z.object({
  version: z.literal(1),
  mnemonic: z.string().min(1),
  /** The BIP-39 seed of `mnemonic`, kept so that each command skips the slow derivation. */
  seed: z
    .string()
    .regex(/^[0-9a-f]{128}$/)
    .optional(),
  /** Next unused NUT-13 counter per keyset id. */
  counters: z.record(z.string(), z.number().int().min(0)),
  proofs: z.array(storedProofSchema),
  ops: z.array(pendingOpSchema),
});
export type WalletFile = z.infer<typeof walletFileSchema>;
