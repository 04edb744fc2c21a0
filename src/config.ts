import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { imageNameSchema } from './core/lease-request.js';
import { DEFAULT_BANDWIDTH_MBIT } from './core/offers.js';

/**
 * The node's configuration: defaults, then the config file (JSON), then environment variables,
 * then command-line flags. Validated once, here; everything else receives a typed `Config`.
 */
const port = z.number().int().min(0).max(65_535);
const evmAddress = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'an EVM address (0x and 40 hex digits)');

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
    /** `egress`: outbound internet through a user-mode network, host and private ranges refused. */
    network: z.enum(['none', 'egress']).default('none'),
    /** Egress cap per lease, megabits per second each direction. */
    bandwidth_mbit: z.number().int().min(1).max(100_000).default(DEFAULT_BANDWIDTH_MBIT),
    price: z.object({
      amount_per_hour: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
      // The mint's one unit: an operator may leave it out, as the README's list of keys does.
      unit: z.literal('sat').default('sat'),
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
    /**
     * A DNS domain whose every subdomain reaches this node (wildcard DNS): each lease's port is
     * then also served at `<port>-lse-<id>.<domain>`, an origin of its own, and lease answers give
     * those URLs (scheme and port of the public URL). Unset: port URLs are paths on the public URL.
     */
    portsDomain: z
      .string()
      .max(200)
      .regex(
        /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
        'not a DNS domain',
      )
      .optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /**
     * Reverse proxies in front of the node (addresses or CIDR ranges) whose `X-Forwarded-For` is
     * believed: behind them the per-client bounds apply per client, not to the proxy as a whole.
     */
    trustProxy: z
      .array(z.union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()]))
      .max(64)
      .default([]),
    /** HTTP connections one client address (IPv6: its /64) may hold at once; 0: no bound. */
    maxConnectionsPerAddress: z.number().int().min(0).max(100_000).default(64),
    /** Bearer token for /v1/operator/*; the routes are off when unset. */
    operatorToken: z.string().min(16).max(512).optional(),
    /** Largest request body accepted anywhere, in bytes. */
    bodyLimitBytes: z
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .default(1024 * 1024),
    /**
     * Where the store lives. Unset (the default): SQLite at `<dataDir>/alacarte.sqlite`, for one
     * machine. `url: "postgres://user:password@host:5432/db"` (libpq form; `?host=/run/postgresql`
     * for a unix socket): a PostgreSQL database that several replicas may share. The URL may hold
     * a password: it is never logged.
     */
    store: z
      .object({
        url: z
          .string()
          .max(2048)
          .regex(/^postgres(?:ql)?:\/\/.+/i, 'must be a postgres:// URL')
          .optional(),
      })
      .strict()
      .prefault({}),
    /** What renters can buy; the defaults ship three offers. */
    offers: z.array(offerSchema).min(1).max(100).optional(),
    /** The SSH server (API.md, SSH): on by default at port 2222, beside the HTTP listener's host. */
    ssh: z
      .object({
        enabled: z.boolean().default(true),
        /** 0 picks a free port (tests). */
        port: port.default(2222),
      })
      .strict()
      .prefault({}),
    /**
     * Egress offers: `dns` is the resolver sandboxes use (IPv4; the only DNS server they may reach).
     * Default: the host's own resolvers, through the user-mode network's forwarder.
     */
    egress: z
      .object({
        // Named in the sandboxes' resolv.conf, so it must be reachable from there: not loopback.
        dns: z
          .ipv4()
          .refine(
            (a) => !a.startsWith('127.'),
            "egress.dns must not be loopback (unset: the host's resolvers)",
          )
          .optional(),
      })
      .strict()
      .prefault({}),
    /**
     * Bounds on the Lightning invoices unpaid 402s make (rails/l402/invoice-limits.ts): per client
     * address a bucket of `invoiceBurst` refilled at `invoicesPerMinute`, and at most
     * `maxUnpaidInvoices` outstanding over all clients. Beyond them a 402 carries no fresh invoice
     * (the Cashu challenge still) and says when to retry (`Retry-After`).
     */
    l402: z
      .object({
        invoicesPerMinute: z.number().int().min(1).max(100_000).default(20),
        invoiceBurst: z.number().int().min(1).max(100_000).default(20),
        maxUnpaidInvoices: z.number().int().min(1).max(1_000_000).default(1000),
      })
      .strict()
      .prefault({}),
    /**
     * x402 (EVM stablecoins) as a third payment rail (API.md): off unless this block is set (and
     * `enabled` not false). One EIP-3009 stablecoin (`asset`, its EIP-712 domain `assetName` and
     * `assetVersion`) on one chain (`network`, CAIP-2 `eip155:<id>`, reached at `rpcUrl`), paid to
     * `payTo`, at `rate`: `atomicUnits` of the asset's smallest units per `sats` sat (prices are
     * rounded up). The node settles through its own facilitator, whose account pays the gas: its
     * private key (hex) comes from the file `facilitatorKeyPath` or ALACARTE_X402_FACILITATOR_KEY
     * and is never logged. Refunds and change of x402-paid leases are ecash of the node's own mint.
     */
    x402: z
      .object({
        enabled: z.boolean().default(true),
        network: z.string().regex(/^eip155:[1-9][0-9]{0,15}$/, 'a CAIP-2 eip155:<chain id>'),
        rpcUrl: z.url({ protocol: /^https?$/ }),
        asset: evmAddress,
        assetName: z.string().min(1).max(64).default('USD Coin'),
        assetVersion: z.string().min(1).max(16).default('2'),
        payTo: evmAddress,
        rate: z
          .object({
            atomicUnits: z.union([
              z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
              z.string().regex(/^[1-9][0-9]{0,30}$/),
            ]),
            sats: z.number().int().min(1).max(1_000_000_000).default(1),
          })
          .strict(),
        maxTimeoutSeconds: z.number().int().min(30).max(86_400).default(300),
        /** Longest wait for a settlement's receipt, milliseconds. */
        confirmationTimeoutMs: z.number().int().min(1000).max(600_000).default(60_000),
        facilitatorKeyPath: z.string().min(1).max(4096).optional(),
      })
      .strict()
      .optional(),
    /**
     * The compute driver: `crun` (default: sandboxes on this machine) or `lxd` (instances of an
     * LXD daemon or cluster, placed by LXD). For lxd: `socket` (default $LXD_DIR/unix.socket or
     * /var/lib/lxd/unix.socket), or `url` of a remote cluster member with the client certificate
     * and key the cluster trusts and the cluster's certificate (pinned); `storagePool` for root
     * disks (default `default`); `runtimeDir`, shared by replicas of one LXD.
     */
    driver: z
      .discriminatedUnion('kind', [
        z.object({ kind: z.literal('crun') }).strict(),
        z
          .object({
            kind: z.literal('lxd'),
            socket: z.string().min(1).max(4096).optional(),
            url: z.url({ protocol: /^https$/ }).optional(),
            clientCertPath: z.string().min(1).optional(),
            clientKeyPath: z.string().min(1).optional(),
            serverCertPath: z.string().min(1).optional(),
            storagePool: z
              .string()
              .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/)
              .default('default'),
            /**
             * The host directory of each instance's /run/alacarte (default <dataDir>/lxd-sandboxes).
             * Replicas sharing one LXD (README "Scaling out") all set the same path, reachable at it on
             * every replica and cluster member: any replica then moves any lease's deadline.
             */
            runtimeDir: z.string().min(1).max(4096).optional(),
          })
          .strict()
          .refine(
            (d) => !d.url || (d.clientCertPath && d.clientKeyPath && d.serverCertPath),
            'driver.url needs clientCertPath, clientKeyPath and serverCertPath',
          ),
      ])
      .default({ kind: 'crun' }),
    /**
     * Sandboxes made ahead (crun driver): per (image, offer's disk size) at least `size` wait ready,
     * made when the node starts and refilled behind each take; the pool grows with demand (as many
     * as were taken in the last 5 s) up to `max`. `concurrency` are made at once over all of them,
     * each after a moment without paid starts (1 fits a 2-core host: a making is several runtime
     * processes); a pool that rents find empty under a steady stream is refilled at once, up to 3
     * at a time (each rent that finds it empty would make its sandbox on its own path). `images`: which images are made ahead from the start (default: every image on
     * sale when the node starts; others are made ahead once rented). A waiting sandbox costs well
     * under 1 MiB of host memory and no CPU.
     */
    pool: z
      .object({
        size: z.number().int().min(0).max(10_000).default(2),
        max: z.number().int().min(0).max(10_000).default(128),
        concurrency: z.number().int().min(1).max(64).default(1),
        images: z.array(imageNameSchema).max(100).optional(),
      })
      .strict()
      .prefault({}),
    /** Other Cashu mints whose tokens this node accepts (it swaps them at that mint first). */
    trustedMints: z.array(z.url()).max(50).default([]),
    mint: z
      .object({
        unit: z.literal('sat').default('sat'),
        inputFeePpk: z.number().int().min(0).max(100_000).default(0),
        maxInputs: z.number().int().min(1).max(100_000).default(1000),
        maxOutputs: z.number().int().min(1).max(100_000).default(1000),
        /**
         * Worker threads that verify swap inputs and sign outputs (the per-proof curve work), so
         * that it does not hold the event loop; 0 does it on the event loop. Default: the host's
         * cores − 1, at least 1; the lease payments' proofs, change and refunds are checked and
         * signed there too. `curveMaxQueuedProofs`: most inputs + outputs waiting for that work over
         * all swaps and payments; a swap beyond it is answered 503 with `Retry-After` and spends
         * nothing, a rent or extension 503 `no_capacity` with `Retry-After`, its token untouched.
         */
        curveThreads: z.number().int().min(0).max(256).optional(),
        curveMaxQueuedProofs: z.number().int().min(1).max(10_000_000).default(8000),
        /**
         * Bounds on the quotes made for nothing (NUT-04 mint quotes: an invoice and a row each;
         * NUT-05 melt quotes: a row each), counted apart for the two kinds: at most
         * `unpaidQuotesPerAddress` unpaid per client address and `maxUnpaidQuotes` over all.
         * Beyond them a quote request answers 429; a wallet that pays its quotes never meets them.
         */
        unpaidQuotesPerAddress: z.number().int().min(1).max(100_000).default(20),
        maxUnpaidQuotes: z.number().int().min(1).max(1_000_000).default(10_000),
        /**
         * Bounds on NUT-17 WebSocket subscriptions (`/mint/v1/ws`): live subscriptions of one
         * connection, and of one client address (an IPv6 one by its /64) over all its connections.
         * Beyond them a subscribe request gets the JSON-RPC error -32000 and nothing is watched.
         */
        nut17: z
          .object({
            maxSubscriptionsPerConnection: z.number().int().min(1).max(10_000).default(100),
            maxSubscriptionsPerAddress: z.number().int().min(1).max(10_000).default(300),
          })
          .strict()
          .prefault({}),
        lightning: z
          .object({
            /** Which Lightning backend the mint uses (src/lightning/<backend>/). */
            backend: z.enum(['fake', 'lnd', 'cln', 'nwc']).default('fake'),
            /** The fake backend settles its own invoices after this many milliseconds. */
            settleDelayMs: z.number().int().min(0).max(3_600_000).default(0),
            /** The fake backend's outgoing payments stay pending this many milliseconds (tests of payouts). */
            payDelayMs: z.number().int().min(0).max(3_600_000).default(0),
            /** Lifetime of the mint's invoices, in seconds (real backends). */
            invoiceExpirySeconds: z.number().int().min(60).max(604_800).default(3600),
            /** LND REST: the macaroon (a file, or hex in ALACARTE_LND_MACAROON) and LND's tls.cert (pinned). */
            lnd: z
              .object({
                url: z.url({ protocol: /^https$/ }),
                macaroonPath: z.string().min(1).optional(),
                tlsCertPath: z.string().min(1),
              })
              .strict()
              .optional(),
            /** CLN clnrest: the rune from `runePath` or ALACARTE_CLN_RUNE; clnrest's certificate pinned when given. */
            cln: z
              .object({
                url: z.url({ protocol: /^https?$/ }),
                runePath: z.string().min(1).optional(),
                tlsCertPath: z.string().min(1).optional(),
              })
              .strict()
              .optional(),
            /** NWC: the nostr+walletconnect:// URL (a secret) from `urlPath` or ALACARTE_NWC_URL. */
            nwc: z
              .object({ urlPath: z.string().min(1).optional() })
              .strict()
              .optional(),
          })
          .strict()
          .superRefine((l, ctx) => {
            if (l.backend === 'lnd' && !l.lnd)
              ctx.addIssue({ code: 'custom', message: "backend 'lnd' needs lnd settings" });
            if (l.backend === 'cln' && !l.cln)
              ctx.addIssue({ code: 'custom', message: "backend 'cln' needs cln settings" });
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
  ALACARTE_PORTS_DOMAIN: (v: string) => ({ portsDomain: v }),
  ALACARTE_LOG_LEVEL: (v: string) => ({ logLevel: v }),
  ALACARTE_OPERATOR_TOKEN: (v: string) => ({ operatorToken: v }),
  ALACARTE_SSH_PORT: (v: string) => ({ ssh: sshPortSetting(v) }),
  ALACARTE_DRIVER: (v: string) => ({ driver: { kind: v } }),
  ALACARTE_STORE_URL: (v: string) => ({ store: { url: v } }),
} as const;

/** `--ssh-port` / ALACARTE_SSH_PORT: a port number, or `off` to serve no SSH. */
export function sshPortSetting(value: string): { enabled: boolean; port?: number } {
  return value === 'off' ? { enabled: false } : { enabled: true, port: Number(value) };
}

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
  const merged: Record<string, unknown> = {
    ...(fromFile as object),
    ...fromEnv,
    ...stripUndefined(sources.flags ?? {}),
  };
  // ALACARTE_DRIVER names a kind; the file's settings of that same kind (socket, url...) stay.
  const fileDriver = (fromFile as { driver?: { kind?: unknown } }).driver;
  if (fromEnv.driver && fileDriver?.kind === (fromEnv.driver as { kind: string }).kind)
    merged.driver = fileDriver;
  const parsed = configSchema.safeParse(merged, {
    error: (issue) => (issue.code === 'invalid_type' && issue.input === undefined ? 'required' : undefined),
  });
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
