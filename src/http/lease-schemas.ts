import { z } from 'zod';
import { AlacarteError } from '../core/errors.js';
import {
  commandSchema,
  envSchema,
  imageNameSchema,
  portsSchema,
  sshKeysSchema,
} from '../core/lease-request.js';

/** Request shapes of the lease API, each bounded: outside data drives no unbounded work. */
const seconds = z
  .number()
  .int()
  .min(1)
  .max(10 * 365 * 24 * 3600);

/**
 * POST /v1/leases. Command, env, ports, image and ssh_keys are the shared lease-request schemas that every
 * driver checks too (core/lease-request.ts): what passes here, a driver does not refuse later,
 * after the payment.
 */
export const createLeaseBody = z
  .object({
    offer: z.string().min(1).max(32),
    seconds,
    image: imageNameSchema,
    command: commandSchema.optional(),
    env: envSchema.optional(),
    ports: portsSchema.optional(),
    ssh_keys: sshKeysSchema.optional(),
  })
  .strict();

export const execBody = z
  .object({
    command: commandSchema,
    stdin: z
      .string()
      .max(1024 * 1024)
      .optional(),
    timeout_seconds: z.number().int().min(1).max(3600).default(30),
  })
  .strict();

export const extendBody = z.object({ seconds }).strict();

export const quoteQuery = z
  .object({
    offer: z.string().min(1).max(32),
    seconds: z
      .string()
      .regex(/^[0-9]{1,9}$/, 'seconds must be a whole number')
      .transform(Number),
  })
  .strict();

/** Validates with a schema or throws the API's `invalid_request`. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    throw new AlacarteError('invalid_request', `${where}${issue?.message ?? 'invalid request'}`);
  }
  return result.data;
}

/** `Authorization: Bearer <token>`, or undefined. */
export function bearerOf(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string' || header.length > 1024) return undefined;
  const m = /^Bearer ([A-Za-z0-9_\-.~+/]+=*)$/.exec(header);
  return m?.[1];
}

/** The optional `Idempotency-Key` header: printable, bounded. */
export function idempotencyKeyOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(header)) {
    throw new AlacarteError('invalid_request', 'Idempotency-Key must be 1 to 255 printable characters');
  }
  return header;
}
