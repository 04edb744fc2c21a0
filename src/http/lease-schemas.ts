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

/** The most stdin an exec takes, in bytes (as text: in UTF-16 code units, as before encodings). */
export const EXEC_STDIN_MAX = 1024 * 1024;

/**
 * Canonical padded base64 (RFC 4648 section 4): Node's decoder skips what it does not know, so a
 * string is valid when it decodes and encodes back to itself. Linear and about 1 ms a MiB (a
 * regular expression over 1.4 M characters takes tens to hundreds of ms of the event loop).
 */
function isBase64(text: string): boolean {
  return Buffer.from(text, 'base64').toString('base64') === text;
}

/**
 * POST /v1/leases/{id}/exec. `encoding` says how `stdin` is given and how `stdout`/`stderr` are
 * answered: `utf8` (the default; text, invalid UTF-8 in the output replaced by U+FFFD) or `base64`
 * (RFC 4648 with padding, canonical; bytes through unchanged). Invalid base64 is `invalid_request`.
 */
export const execBody = z
  .object({
    command: commandSchema,
    // Base64 of EXEC_STDIN_MAX bytes is 4/3 as long; the body limit of the node applies first.
    stdin: z
      .string()
      .max(Math.ceil(EXEC_STDIN_MAX / 3) * 4)
      .optional(),
    encoding: z.enum(['utf8', 'base64']).default('utf8'),
    timeout_seconds: z.number().int().min(1).max(3600).default(30),
    /** Start detached and answer at once (`202 {"started": true, "pid": n}`); output discarded. */
    background: z.boolean().default(false),
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.stdin === undefined) return;
    if (body.encoding === 'utf8' && body.stdin.length > EXEC_STDIN_MAX) {
      ctx.addIssue({ code: 'custom', path: ['stdin'], message: `at most ${EXEC_STDIN_MAX} characters` });
    }
    if (body.encoding === 'base64' && !isBase64(body.stdin)) {
      ctx.addIssue({ code: 'custom', path: ['stdin'], message: 'not valid base64 (RFC 4648, padded)' });
    }
    if (body.background && body.stdin !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['stdin'], message: 'a background command gets no stdin' });
    }
  });

/** The bytes an exec body's stdin stands for, by its encoding (validated by execBody). */
export function execStdin(body: z.infer<typeof execBody>): string | Buffer | undefined {
  if (body.stdin === undefined || body.encoding === 'utf8') return body.stdin;
  return Buffer.from(body.stdin, 'base64');
}

export const extendBody = z.object({ seconds }).strict();

export const quoteQuery = z
  .object({
    offer: z.string().min(1).max(32),
    seconds: z
      .string()
      .regex(/^[0-9]{1,9}$/, 'a whole number of seconds, e.g. 3600')
      .transform(Number),
  })
  .strict();

/** What a client is told when a body is not a JSON object (or not sent as JSON). */
export const BODY_NOT_JSON_OBJECT =
  'the body must be a JSON object sent with the header content-type: application/json';

/** Validates with a schema or throws the API's `invalid_request`. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  // Zod's own words for a missing field ("Invalid input: expected string, received undefined")
  // read as a type error to someone who simply left the field out.
  const result = schema.safeParse(input ?? {}, {
    error: (issue) => (issue.code === 'invalid_type' && issue.input === undefined ? 'required' : undefined),
  });
  if (!result.success) {
    const issue = result.error.issues[0];
    // A body that is not an object at all is almost always one sent without the JSON content
    // type (curl -d sends a form, --data-binary with text/plain a string): say how to send it.
    if (issue?.code === 'invalid_type' && issue.path.length === 0 && issue.expected === 'object') {
      throw new AlacarteError('invalid_request', BODY_NOT_JSON_OBJECT);
    }
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    throw new AlacarteError('invalid_request', `${where}${issue?.message ?? 'invalid request'}`);
  }
  return result.data;
}

/**
 * `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme's name in any case and the
 * whitespace after it as RFC 9110 §11.4 allows), or undefined.
 */
export function bearerOf(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string' || header.length > 1024) return undefined;
  const m = /^Bearer[ \t]+([A-Za-z0-9_\-.~+/]+=*)$/i.exec(header);
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
