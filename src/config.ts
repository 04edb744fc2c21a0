import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

/**
 * The node's configuration: defaults, then the config file (JSON), then environment variables,
 * then command-line flags. Validated once, here; everything else receives a typed `Config`.
 */
const port = z.number().int().min(0).max(65_535);

const offerSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/),
    // What a driver applies (core/lease-request.ts): a hundredth of a core at least, in thousandths.
    vcpu: z
      .number()
      .min(0.01)
      .max(256)
      .refine((v) => Math.abs(v * 1000 - Math.round(v * 1000)) < 1e-6, 'vcpu is counted in thousandths'),
    memory_mib: z.number().int().min(16).max(1_048_576),
    pids: z.number().int().min(8).max(1_000_000),
    disk_mib: z.number().int().min(1).max(1_048_576),
    price: z.object({
      amount_per_hour: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
      unit: z.literal('sat'),
    }),
    min_seconds: z.number().int().min(1).default(60),
    max_seconds: z
      .number()
      .int()
      .min(1)
      .max(10 * 365 * 24 * 3600)
      .default(30 * 24 * 3600),
  })
  .strict()
  .refine((o) => o.min_seconds <= o.max_seconds, 'min_seconds must not exceed max_seconds');

export type OfferConfig = z.infer<typeof offerSchema>;

export const configSchema = z
  .object({
    host: z.string().min(1).max(255).default('127.0.0.1'),
    port: port.default(8402),
    dataDir: z.string().min(1).default('./data'),
    /** Base URL clients reach this node at; defaults to http://host:port. Mint URL = publicUrl + '/mint'. */
    publicUrl: z.url().optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Bearer token for /v1/operator/*; the routes are off when unset. */
    operatorToken: z.string().min(16).max(512).optional(),
    /** Largest request body accepted anywhere, in bytes. */
    bodyLimitBytes: z
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .default(1024 * 1024),
    /** What renters can buy; the defaults ship three offers. */
    offers: z.array(offerSchema).min(1).max(100).optional(),
    /** Other Cashu mints whose tokens this node accepts (it swaps them at that mint first). */
    trustedMints: z.array(z.url()).max(50).default([]),
    mint: z
      .object({
        unit: z.literal('sat').default('sat'),
        inputFeePpk: z.number().int().min(0).max(100_000).default(0),
        maxInputs: z.number().int().min(1).max(100_000).default(1000),
        maxOutputs: z.number().int().min(1).max(100_000).default(1000),
        lightning: z
          .object({
            backend: z.literal('fake').default('fake'),
            /** The fake backend settles its own invoices after this many milliseconds. */
            settleDelayMs: z.number().int().min(0).max(3_600_000).default(0),
            /** The fake backend's outgoing payments stay pending this many milliseconds (tests of payouts). */
            payDelayMs: z.number().int().min(0).max(3_600_000).default(0),
          })
          .prefault({}),
      })
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

export interface ConfigSources {
  file?: string;
  env?: NodeJS.ProcessEnv;
  flags?: ConfigInput;
}

const ENV_KEYS = {
  ALACARTE_HOST: (v: string) => ({ host: v }),
  ALACARTE_PORT: (v: string) => ({ port: Number(v) }),
  ALACARTE_DATA: (v: string) => ({ dataDir: v }),
  ALACARTE_PUBLIC_URL: (v: string) => ({ publicUrl: v }),
  ALACARTE_LOG_LEVEL: (v: string) => ({ logLevel: v }),
  ALACARTE_OPERATOR_TOKEN: (v: string) => ({ operatorToken: v }),
} as const;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(sources: ConfigSources = {}): Config {
  let fromFile: unknown = {};
  if (sources.file) {
    try {
      fromFile = JSON.parse(readFileSync(sources.file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`cannot read config file ${sources.file}: ${(err as Error).message}`);
    }
    if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) {
      throw new ConfigError(`config file ${sources.file} must hold a JSON object`);
    }
  }
  const fromEnv: Record<string, unknown> = {};
  const env = sources.env ?? {};
  for (const [key, apply] of Object.entries(ENV_KEYS)) {
    const value = env[key];
    if (value !== undefined && value !== '') Object.assign(fromEnv, apply(value));
  }
  const merged = { ...(fromFile as object), ...fromEnv, ...stripUndefined(sources.flags ?? {}) };
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return { ...parsed.data, dataDir: resolve(parsed.data.dataDir) };
}

/** The base URL clients use, without a trailing slash. */
export function publicUrl(config: Pick<Config, 'publicUrl' | 'host' | 'port'>, boundPort?: number): string {
  if (config.publicUrl) return config.publicUrl.replace(/\/+$/, '');
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  return `http://${host}:${boundPort ?? config.port}`;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
