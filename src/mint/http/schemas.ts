import { z } from 'zod';

/**
 * Request bodies of the NUT routes, validated at the boundary. Shapes only: counts, keysets,
 * amounts against keysets and curve membership are the Mint's business (it serves in-process
 * callers too), each with its own NUT error code.
 */

/** Compressed SEC1 point as lowercase hex; whether it lies on the curve is checked later. */
const point = z.string().regex(/^0[23][0-9a-f]{64}$/, 'expected a compressed point as lowercase hex');
const keysetId = z.string().regex(/^(00[0-9a-f]{14}|01[0-9a-f]{64})$/, 'expected a keyset id');
/** Safe integer; NUT amounts are u64 but every denomination we sign is far below 2^53. */
const amount = z.number().int().nonnegative();
/** NUT-00 recommends 64 hex chars; NUT-10 secrets with several keys and tags stay well below 1 KiB. */
export const MAX_SECRET_LENGTH = 1024;
const secret = z.string().min(1).max(MAX_SECRET_LENGTH);
const witness = z.union([
  z.string().max(8192),
  z.object({
    signatures: z
      .array(z.string().regex(/^[0-9a-f]{128}$/))
      .max(64)
      .optional(),
    preimage: z.string().max(256).optional(),
  }),
]);
const quoteId = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'expected a quote id');
const unit = z.string().min(1).max(32);

export const proofSchema = z.object({
  amount,
  id: keysetId,
  secret,
  C: point,
  witness: witness.optional(),
});

export const blindedMessageSchema = z.object({ amount, id: keysetId, B_: point });

export const swapSchema = z.object({
  inputs: z.array(proofSchema),
  outputs: z.array(blindedMessageSchema),
});

export const mintQuoteSchema = z.object({
  amount: amount.positive(),
  unit,
  description: z.string().max(639).optional(),
  // NUT-20: whether it is a point on the curve is the Mint's check (error 20009), not a shape one.
  pubkey: z.string().max(256).nullable().optional(),
});

export const mintSchema = z.object({
  quote: quoteId,
  outputs: z.array(blindedMessageSchema),
  // NUT-20: checked by the Mint against the quote's key (error 20008).
  signature: z.string().max(256).nullable().optional(),
});

export const meltQuoteSchema = z.object({
  request: z.string().min(1).max(8192),
  unit,
  options: z
    .object({
      amountless: z.object({ amount_msat: z.number().int().nonnegative() }).optional(),
      mpp: z.unknown().optional(),
    })
    .optional(),
});

export const meltSchema = z.object({
  quote: quoteId,
  inputs: z.array(proofSchema),
  outputs: z.array(blindedMessageSchema).optional(),
  prefer_async: z.boolean().optional(),
});

export const checkStateSchema = z.object({ Ys: z.array(point) });
export const restoreSchema = z.object({ outputs: z.array(blindedMessageSchema) });

export const quoteParamSchema = z.object({ quote: quoteId });
export const keysetParamSchema = z.object({ id: keysetId });
