import { z } from 'zod';
import { AlacarteError } from '../core/errors.js';

/** Request shapes of the lease API, each bounded: outside data drives no unbounded work. */
const seconds = z
  .number()
  .int()
  .min(1)
  .max(10 * 365 * 24 * 3600);

export const createLeaseBody = z
  .object({
    offer: z.string().min(1).max(32),
    seconds,
    image: z.string().min(1).max(64),
    command: z.array(z.string().max(4096)).min(1).max(256).optional(),
    env: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/), z.string().max(4096))
      .refine((e) => Object.keys(e).length <= 128, 'at most 128 environment variables')
      .optional(),
    ports: z
      .array(z.number().int().min(1).max(65_535))
      .max(16)
      .refine((p) => new Set(p).size === p.length, 'ports must be unique')
      .optional(),
  })
  .strict();

export const execBody = z
  .object({
    command: z.array(z.string().max(65_536)).min(1).max(1024),
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
