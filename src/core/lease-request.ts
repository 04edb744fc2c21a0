import { z } from 'zod';
import { AlacarteError } from './errors.js';

/**
 * The one description of what a lease request may hold: the HTTP layer parses bodies with these
 * schemas before any payment is looked at, and every compute driver checks what it is handed with
 * the same ones. So nothing a driver would refuse can get past the HTTP layer and be paid for
 * first (a refusal after payment costs the renter the input fees of the refund).
 */
export const LEASE_REQUEST_BOUNDS = {
  /** Parts of a command (the lease's own or an exec's). */
  commandParts: 1024,
  /** UTF-8 bytes of all parts of a command together, far below Linux's 128 KiB per argument. */
  commandBytes: 64 * 1024,
  envVars: 128,
  /** UTF-8 bytes of one value. */
  envValueBytes: 8 * 1024,
  /** UTF-8 bytes of all `NAME=value` entries together: every exec and terminal passes them as arguments. */
  envBytes: 64 * 1024,
  ports: 16,
} as const;

/** A lease id such as `lse_3kT...`: letters, digits, `_` and `-`, at most 64 characters. */
export const SANDBOX_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** An image name: it becomes a directory name, so no path characters, no upper case. */
export const IMAGE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/**
 * The image a client rents when its user names none: the CLI's `rent`, the web page (which picks
 * its first listed image on a node without it) and the agents' `rent` tool alike. busybox,
 * because every crun node has it (the driver builds it when it is missing) and it starts
 * smallest; `debian` is one `--image debian` away and may be absent (not built yet, removed).
 */
export const DEFAULT_IMAGE = 'busybox';

/**
 * The latest deadline a lease may have: the end of year 9999, the last instant RFC 3339 (API.md's
 * time format) can write. A lease that would end later is refused before it is paid.
 */
export const LATEST_DEADLINE_MS = Date.UTC(9999, 11, 31, 23, 59, 59);

const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');
/** In a `u` regex a surrogate pair is one code point, so this finds only lone surrogates. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Text that reaches a process as an argument or environment value: no NUL (C strings end there)
 * and well-formed UTF-16, since a lone surrogate cannot be encoded and would arrive altered.
 */
function checkText(s: string, where: string, ctx: z.RefinementCtx, path: PropertyKey[]): void {
  if (s.includes('\0')) ctx.addIssue({ code: 'custom', message: `${where} must not contain NUL`, path });
  else if (LONE_SURROGATE.test(s))
    ctx.addIssue({ code: 'custom', message: `${where} must be valid Unicode (a lone surrogate)`, path });
}

/**
 * A command line: 1 to 1024 strings, 64 KiB in all, no NUL, valid Unicode; the first names a
 * program (not empty: nothing could run it, and a lease would be sold with nothing running).
 */
export const commandSchema = z
  .array(z.string().max(LEASE_REQUEST_BOUNDS.commandBytes))
  .min(1)
  .max(LEASE_REQUEST_BOUNDS.commandParts)
  .superRefine((parts, ctx) => {
    if (parts[0] === '')
      ctx.addIssue({ code: 'custom', path: [0], message: 'command[0] must name a program, not be empty' });
    let bytes = 0;
    parts.forEach((part, i) => {
      checkText(part, 'command', ctx, [i]);
      bytes += utf8Bytes(part);
    });
    if (bytes > LEASE_REQUEST_BOUNDS.commandBytes)
      ctx.addIssue({
        code: 'custom',
        message: `command must be at most ${LEASE_REQUEST_BOUNDS.commandBytes} bytes in all`,
      });
  });

/** Environment variables: shell-style names, at most 128, 8 KiB a value and 64 KiB in all. */
export const envSchema = z
  .record(
    z
      .string()
      .regex(ENV_NAME_PATTERN, 'env names are letters, digits and _, not starting with a digit')
      // A plain object cannot hold this name as data: it would be dropped without a word.
      .refine((name) => name !== '__proto__', 'env name __proto__ is reserved'),
    z.string().max(LEASE_REQUEST_BOUNDS.envValueBytes),
  )
  .superRefine((env, ctx) => {
    const entries = Object.entries(env);
    if (entries.length > LEASE_REQUEST_BOUNDS.envVars) {
      ctx.addIssue({
        code: 'custom',
        message: `at most ${LEASE_REQUEST_BOUNDS.envVars} environment variables`,
      });
      return;
    }
    let bytes = 0;
    for (const [name, value] of entries) {
      checkText(value, `env ${name}`, ctx, [name]);
      if (utf8Bytes(value) > LEASE_REQUEST_BOUNDS.envValueBytes)
        ctx.addIssue({
          code: 'custom',
          message: `env values must be at most ${LEASE_REQUEST_BOUNDS.envValueBytes} bytes`,
          path: [name],
        });
      bytes += utf8Bytes(name) + 1 + utf8Bytes(value);
    }
    if (bytes > LEASE_REQUEST_BOUNDS.envBytes)
      ctx.addIssue({
        code: 'custom',
        message: `env must be at most ${LEASE_REQUEST_BOUNDS.envBytes} bytes in all`,
      });
  });

/** TCP ports inside the sandbox to publish: distinct, 1 to 65535, at most 16. */
export const portsSchema = z
  .array(z.number().int().min(1).max(65_535))
  .max(LEASE_REQUEST_BOUNDS.ports)
  .refine((p) => new Set(p).size === p.length, 'ports must be unique');

/** A lease's SSH public keys (API.md, SSH), checked with ssh2's key parser: see core/ssh-keys.ts. */
export { MAX_SSH_KEYS, sshKeysSchema } from './ssh-keys.js';

export const imageNameSchema = z.string().regex(IMAGE_NAME_PATTERN, 'not an image name');

/** What a sandbox runs: the part of a lease request a driver receives (SandboxSpec). */
export const sandboxRequestSchema = z.object({
  leaseId: z.string().regex(SANDBOX_ID_PATTERN, 'bad lease id'),
  image: imageNameSchema,
  command: commandSchema.optional(),
  env: envSchema.optional(),
  ports: portsSchema.optional(),
});

/**
 * What an offer may grant, in the units a driver applies: vCPUs in whole thousandths of a core
 * (capacity is counted in milli-vCPUs, exactly), at least a hundredth; memory and pids above what
 * a sandbox's own init needs. The operator's configuration is checked with this at start-up.
 */
export const sandboxLimitsSchema = z
  .object({
    vcpu: z
      .number()
      .min(0.01)
      .max(1024)
      .refine((v) => Math.abs(v * 1000 - Math.round(v * 1000)) < 1e-6, 'vcpu is counted in thousandths'),
    memoryMib: z.number().int().min(16).max(1_048_576),
    pids: z.number().int().min(8).max(1_000_000),
    diskMib: z.number().int().min(1).max(1_048_576),
    network: z.enum(['none', 'egress']).optional(),
    bandwidthMbit: z.number().int().min(1).max(100_000).optional(),
  })
  .refine((l) => l.network !== 'egress' || l.bandwidthMbit !== undefined, 'egress needs bandwidthMbit');

/** Whether a lease may end at `deadline`: a real date, not past LATEST_DEADLINE_MS. */
export function deadlineAllowed(deadline: Date): boolean {
  const t = deadline.getTime();
  return Number.isFinite(t) && t <= LATEST_DEADLINE_MS;
}

/**
 * Parses `input` with one of the schemas above or throws AlacarteError `invalid_request` naming
 * the first problem (at most 200 characters of it, none of the input itself).
 */
export function parseLeaseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? `${issue.path.map(String).join('.').slice(0, 64)}: ` : '';
    throw new AlacarteError(
      'invalid_request',
      `${where}${issue?.message ?? 'invalid request'}`.slice(0, 200),
    );
  }
  return result.data;
}
