import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { mcpRoutes } from './agents/mcp-route.js';
import { type Config, publicUrl } from './config.js';
import { DEFAULT_OFFERS, type Offer, offerFromJson } from './core/offers.js';
import type { ComputeDriver, ImageDetail } from './drivers/compute-driver.js';
import { LeaseFiles } from './files/lease-files.js';
import { buildApp } from './http/app.js';
import { attachRoutes } from './http/attach-routes.js';
import { docsRoutes } from './http/docs-routes.js';
import { fileRoutes } from './http/file-routes.js';
import { type LeaseRoutesOptions, leaseRoutes, offersBody } from './http/lease-routes.js';
import { NodeMetrics } from './http/metrics.js';
import { operatorRoutes } from './http/operator-routes.js';
import { portHost, portPath, portRoutes } from './http/port-routes.js';
import { defaultWebDir, webRoutes } from './http/web-routes.js';
import { computeTarget, loadOrCreateReplicaId } from './leases/compute-target.js';
import { LeaseService } from './leases/lease-service.js';
import { NodeSecret, requireStoreNodeKey } from './leases/node-secret.js';
import { Reaper } from './leases/reaper.js';
import { reconcileSummary } from './leases/reconciler.js';
import { SshLogins } from './leases/ssh-logins.js';
import { createLightningBackend, type RunningLightning } from './lightning/create-backend.js';
import type { LightningBackend } from './lightning/lightning-backend.js';
import { type Logger, silentLogger } from './log.js';
import { mintPlugin } from './mint/http/routes.js';
import { Mint } from './mint/mint.js';
import { QuoteLimits } from './mint/quote-limits.js';
import { shareMintEvents } from './mint/replica-events.js';
import { loadOrCreateSeed } from './mint/seed.js';
import { asMintDb } from './mint/store/mint-store.js';
import type { MintTables } from './mint/store/tables.js';
import { createPayouts } from './payouts/create-payouts.js';
import type { PayoutService } from './payouts/payout-service.js';
import { CashuRail } from './rails/cashu/cashu-rail.js';
import { requireTrustedMintNuts } from './rails/cashu/nut-06-requirements.js';
import { InvoiceLimits } from './rails/l402/invoice-limits.js';
import { L402Rail } from './rails/l402/l402-rail.js';
import { Rails } from './rails/rails.js';
import { facilitatorOf, x402SettingsOf } from './rails/x402/create-x402.js';
import type { X402Facilitator } from './rails/x402/facilitator.js';
import { SETTLEMENT_GRACE_MS } from './rails/x402/settlement-journal.js';
import { SettlementSweeper } from './rails/x402/settlement-sweeper.js';
import { type SweepOutcome, X402Rail } from './rails/x402/x402-rail.js';
import { loadOrCreateHostKey } from './ssh/host-key.js';
import { SshServer, sourceOf } from './ssh/ssh-server.js';
import { type Database, openStore, storeAnswers } from './store/database.js';
import { GroupCommit, type Transact } from './store/group-commit.js';
import { type ReplicaNotices, replicaNotices } from './store/replica-notices.js';
import { WalSync } from './store/wal-sync.js';

export interface NodeOptions {
  logger?: Logger;
  /** The compute driver; without one the node serves its mint but rents nothing. */
  driver?: ComputeDriver;
  /**
   * Images renters may ask for: names, or a function read on each request (the driver's images
   * directory, so images pulled while the node runs are offered at once).
   */
  images?: readonly string[] | (() => readonly ImageDetail[]);
  clock?: () => Date;
  /** The built web page (Vite output); defaults to dist/web. */
  webDir?: string;
  /** HTTP towards trusted mints; the global fetch by default. */
  fetch?: typeof fetch;
  /** When open terminals are told that their lease ends, in ms before it (5 and 1 minute by default). */
  deadlineNoticeOffsetsMs?: readonly number[];
  /**
   * What the x402 rail settles through, given the facilitator the node built from its config
   * (tests wrap it to fail where a real one may: between a settlement sent and its answer).
   */
  x402Facilitator?: (built: X402Facilitator) => X402Facilitator;
}

/**
 * Creates the data directory, traverse-only for others: sandboxes run as unprivileged host ids and
 * must reach their bundles below it; nothing here can be listed or read by them (files are 0600).
 */
export function prepareDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  chmodSync(dir, 0o711);
}

/** A lease's public port URL: a host name of its own under `portsDomain`, else a path on the node. */
function portUrl(base: string, leaseId: string, port: number, portsDomain: string | undefined): string {
  if (!portsDomain) return `${base}${portPath(leaseId, port)}`;
  const u = new URL(base);
  return `${u.protocol}//${portHost(leaseId, port, portsDomain)}${u.port ? `:${u.port}` : ''}/`;
}

/**
 * One alacarte node: store, mint, lease service and HTTP front, wired together. Everything it
 * holds is per instance, so tests may run several nodes in one process.
 */
export class AlacarteNode {
  private constructor(
    readonly config: Config,
    readonly app: FastifyInstance,
    readonly db: Database,
    readonly mint: Mint,
    readonly lightning: LightningBackend,
    readonly leases: LeaseService | undefined,
    /** Pays the operator's earnings out over Lightning (src/payouts/). */
    readonly payouts: PayoutService,
    private readonly reaper: Reaper | undefined,
    private readonly logger: Logger,
    /** The base URL clients use; final once listening. */
    private readonly urlRef: { url: string },
    /** The SSH server (none without a driver or with SSH off) and, once listening, its port. */
    private readonly sshRef: SshRef,
    /** Lease and mint changes told to and by the other replicas sharing the store. */
    readonly notices: ReplicaNotices,
    /** This data directory's replica id (`<dataDir>/replica.id`, compute-target.ts). */
    readonly replica: string,
  ) {}

  static async create(config: Config, options: NodeOptions = {}): Promise<AlacarteNode> {
    const logger = options.logger ?? silentLogger();
    // Before anything is opened: a trusted mint the node cannot rely on stops the start-up here.
    await requireTrustedMintNuts(config.trustedMints, { fetch: options.fetch });
    prepareDataDir(config.dataDir);
    const replica = loadOrCreateReplicaId(join(config.dataDir, 'replica.id'));
    const { db, sqlite, postgres } = await openStore(
      config.store.url ?? join(config.dataDir, 'alacarte.sqlite'),
    );
    let running: RunningLightning | undefined;
    // Replicas sharing a PostgreSQL store tell each other of lease and mint changes (LISTEN/NOTIFY).
    const notices = replicaNotices(postgres, (message) => logger.warn(message), replica);
    let rotated: () => void = () => {};
    try {
      // The URL is known for sure only once listening (port 0 picks one); routes read it late.
      const urlRef = { url: publicUrl(config) };
      running = createLightningBackend(config.mint.lightning, config.dataDir);
      const lightning = running.backend;
      const mint = await Mint.create({
        db: asMintDb(db),
        // Swaps commit on the connection itself (SQLite: prepared statements, group commit;
        // PostgreSQL: one statement).
        sqlite,
        postgres,
        lightning,
        seed: loadOrCreateSeed(join(config.dataDir, 'mint.seed')),
        logger,
        limits: { maxInputs: config.mint.maxInputs, maxOutputs: config.mint.maxOutputs },
        curve: { threads: config.mint.curveThreads, maxQueuedProofs: config.mint.curveMaxQueuedProofs },
        keysets: { inputFeePpk: config.mint.inputFeePpk },
        onRotated: () => rotated(),
      });
      // NUT-17 notifications and keyset rotations across replicas (PostgreSQL; nothing on SQLite).
      const shared = shareMintEvents(mint, notices, logger);
      rotated = shared.rotated;
      const now = () => (options.clock ? options.clock().getTime() : Date.now());
      const quoteBounds = {
        perClient: config.mint.unpaidQuotesPerAddress,
        maxUnpaid: config.mint.maxUnpaidQuotes,
      };
      const plugins: Array<{ prefix: string; plugin: FastifyPluginAsync }> = [
        {
          prefix: '/mint',
          plugin: mintPlugin({
            mint,
            // One count each: unpaid mint quotes must not keep wallets from melting.
            quoteLimits: {
              mint: new QuoteLimits({ ...quoteBounds, now }),
              melt: new QuoteLimits({ ...quoteBounds, now }),
            },
            clientOf: sourceOf,
            nut17: config.mint.nut17,
          }),
        },
        { prefix: '', plugin: webRoutes({ dir: options.webDir ?? defaultWebDir() }) },
        { prefix: '', plugin: docsRoutes({ publicUrl: () => urlRef.url }) },
      ];

      const sshRef: SshRef = {};
      const secret = NodeSecret.loadOrCreate(join(config.dataDir, 'node.key'));
      await requireStoreNodeKey(db, secret, join(config.dataDir, 'node.key'));
      const payouts = createPayouts(config, { db, lightning, secret, fetch: options.fetch, logger });

      let leases: LeaseService | undefined;
      let soldOffers: readonly Offer[] = [];
      let reaper: Reaper | undefined;
      let metrics: NodeMetrics | undefined;
      let x402On: Record<string, unknown> | undefined;
      let x402Rail: X402Rail | undefined;
      const driver = options.driver;
      if (driver) {
        const offers: Offer[] = config.offers ? config.offers.map(offerFromJson) : [...DEFAULT_OFFERS];
        soldOffers = offers;
        // SQLite: the payments and `running` marks of one event-loop turn share one COMMIT (one
        // fsync on the node's thread instead of one per request); PostgreSQL commits in parallel.
        const groupCommit = new GroupCommit(db, {
          grouped: sqlite !== undefined,
          inTransaction: sqlite ? () => sqlite.inTransaction : undefined,
          // The batch's fsync in libuv's pool rather than on this thread.
          walSync: sqlite ? WalSync.for(sqlite) : undefined,
        });
        const cashu = new CashuRail({
          // One Kysely instance serves every domain's tables; the transaction is the same object.
          mint: mint.nodePayments(groupCommit.transact as unknown as Transact<MintTables>),
          mintUrl: () => `${urlRef.url}/mint`,
          unit: config.mint.unit,
          secret,
          maxProofs: config.mint.maxInputs,
          trustedMints: config.trustedMints,
          db,
          fetch: options.fetch,
          logger,
        });
        // Lightning (L402) beside Cashu: invoices of the own mint's backend, paid back in its ecash.
        const l402 = new L402Rail({
          db,
          secret,
          lightning,
          payouts: cashu,
          mintUrl: () => `${urlRef.url}/mint`,
          unit: config.mint.unit,
          limits: new InvoiceLimits({
            perMinute: config.l402.invoicesPerMinute,
            burst: config.l402.invoiceBurst,
            maxUnpaid: config.l402.maxUnpaidInvoices,
            now: () => (options.clock ? options.clock().getTime() : Date.now()),
          }),
          clock: options.clock,
          logger,
        });
        // x402 (EVM stablecoins) beside them when the operator sets it up: settled by the node's own
        // facilitator, paid back in the own mint's ecash.
        const x402Config = config.x402?.enabled ? config.x402 : undefined;
        const x402 = x402Config
          ? new X402Rail({
              db,
              settings: x402SettingsOf(x402Config),
              facilitator: (options.x402Facilitator ?? ((built) => built))(facilitatorOf(x402Config)),
              payouts: cashu,
              mintUrl: () => `${urlRef.url}/mint`,
              resourceUrl: (subject) =>
                subject.kind === 'create'
                  ? `${urlRef.url}/v1/leases`
                  : `${urlRef.url}/v1/leases/${subject.leaseId}/extend`,
              unit: config.mint.unit,
              // Never shorter than a request may still be waiting for its settlement's receipt.
              settlementGraceMs: Math.max(SETTLEMENT_GRACE_MS, 2 * x402Config.confirmationTimeoutMs),
              clock: options.clock,
              logger,
            })
          : undefined;
        x402On = x402?.describe();
        x402Rail = x402;
        const rail = new Rails({ rails: [cashu, l402, ...(x402 ? [x402] : [])], payouts: cashu, logger });
        const service = new LeaseService({
          db,
          driver,
          rail,
          offers,
          images: options.images ?? ['busybox'],
          secret,
          clock: options.clock,
          logger,
          onEvent: (event) => metrics?.observe(event),
          deadlineNoticeOffsetsMs: options.deadlineNoticeOffsetsMs,
          portUrl: (leaseId, port) => portUrl(urlRef.url, leaseId, port, config.portsDomain),
          ssh: () =>
            sshRef.port === undefined ? undefined : { host: hostOf(urlRef.url), port: sshRef.port },
          target: computeTarget(driver, replica),
          notices,
          groupCommit,
        });
        if (config.ssh.enabled) {
          const hostKey = loadOrCreateHostKey(join(config.dataDir, 'ssh_host_ed25519_key'));
          sshRef.hostKey = hostKey.fingerprint;
          sshRef.server = new SshServer({
            hostKey,
            leases: new SshLogins(db, options.clock, (row) => service.reconciler.holds(row)),
            driver,
            logger,
            deadlineNotices: service.deadlineNotices,
          });
        }
        metrics = new NodeMetrics({
          leasesByState: () => service.countByState(),
          capacity: () => service.capacity(),
        });
        leases = service;
        reaper = new Reaper(service.reconciler, logger);
        const leaseApi: LeaseRoutesOptions = {
          leases: service,
          mints: () => cashu.mints(),
          unit: config.mint.unit,
          l402: () => l402.accepts(config.mint.unit),
          ...(x402
            ? {
                x402: () => x402.describe(),
                x402Settlement: async (headers) => x402.settlementOf(headers),
              }
            : {}),
          ssh: () =>
            sshRef.port === undefined || sshRef.hostKey === undefined
              ? undefined
              : { port: sshRef.port, host_key_sha256: sshRef.hostKey },
        };
        const files = new LeaseFiles(service);
        plugins.push({ prefix: '/v1', plugin: leaseRoutes(leaseApi) });
        plugins.push({ prefix: '/v1', plugin: attachRoutes(service) });
        plugins.push({ prefix: '', plugin: portRoutes(service, { portsDomain: config.portsDomain }) });
        plugins.push({ prefix: '/v1', plugin: fileRoutes(files) });
        // API.md "Agents": the same service and files API as MCP tools.
        plugins.push({
          prefix: '',
          plugin: mcpRoutes({
            leases: service,
            files,
            offers: () => offersBody(leaseApi),
            onUnexpected: (err) => logger.error({ err }, 'unexpected error in an MCP tool'),
          }),
        });
        if (config.operatorToken) {
          plugins.push({
            prefix: '/v1/operator',
            plugin: operatorRoutes({
              db,
              token: config.operatorToken,
              unit: config.mint.unit,
              trustedMints: config.trustedMints,
              payouts,
            }),
          });
        }
      }
      const app = await buildApp({
        logger,
        bodyLimitBytes: config.bodyLimitBytes,
        plugins,
        metrics,
        trustProxy: config.trustProxy,
        maxConnectionsPerAddress: config.maxConnectionsPerAddress,
        storeAnswers: () => storeAnswers(db),
      });
      const node = new AlacarteNode(
        config,
        app,
        db,
        mint,
        lightning,
        leases,
        payouts,
        reaper,
        logger,
        urlRef,
        sshRef,
        notices,
        replica,
      );
      node.closeLightning = running.close;
      if (driver && leases) node.sold = { driver, offers: soldOffers };
      node.x402 = x402On;
      if (x402Rail) {
        const rail = x402Rail;
        node.x402Rail = rail;
        node.x402Sweeper = new SettlementSweeper(() => rail.sweepSettlements(), logger);
      }
      return node;
    } catch (err) {
      await running?.close();
      await notices.close();
      await db.destroy();
      throw err;
    }
  }

  /**
   * Has the driver make sandboxes ahead for every offer's disk size and each image of
   * `pool.images` (default: every image on sale now), so that the first paid starts, a burst's
   * included, take sandboxes made ahead. Returns at once; an image that cannot be prepared is
   * logged and skipped.
   */
  private prewarm(leases: LeaseService): void {
    const { driver, offers } = this.sold ?? {};
    if (!driver?.prewarm || !offers) return;
    const images = this.config.pool.images ?? leases.imageList();
    const disks = [...new Set(offers.map((o) => o.diskMib))];
    for (const image of images) {
      for (const diskMib of disks) {
        try {
          driver.prewarm?.(image, diskMib);
        } catch (err) {
          this.logger.warn({ err: String(err), image }, 'sandboxes of an image could not be made ahead');
        }
      }
    }
  }

  /**
   * Where x402 pays, when the rail is on (`payment.x402` of /v1/offers: network, asset, payee),
   * for the server's banner; undefined when off.
   */
  x402: Record<string, unknown> | undefined;

  /** The x402 rail and the sweep of its settlement journal, when x402 is on. */
  private x402Rail: X402Rail | undefined;
  private x402Sweeper: SettlementSweeper | undefined;

  /**
   * One pass of the x402 settlement sweep now (X402Rail.sweepSettlements: settlements sent and
   * never claimed, past the payer's retry window, resolved against the chain); undefined when
   * x402 is off. The node also runs it every minute once listening.
   */
  async sweepX402Settlements(): Promise<SweepOutcome | undefined> {
    return this.x402Rail?.sweepSettlements();
  }

  /** The driver and the offers on sale, for prewarm(); none without a driver. */
  private sold: { driver: ComputeDriver; offers: readonly Offer[] } | undefined;

  /** Stops the Lightning backend's connections and subscriptions (after the mint stopped listening). */
  private closeLightning: () => Promise<void> = async () => {};

  get url(): string {
    return this.urlRef.url;
  }

  /**
   * Reconciles leases with the driver, starts the reaper, then listens (HTTP, and SSH when on);
   * resolves with the URLs and the SSH port and host key fingerprint.
   */
  async listen(): Promise<{ url: string; mintUrl: string; ssh?: { port: number; hostKeySha256: string } }> {
    if (this.leases) {
      const outcome = await this.leases.reconcile();
      if (Object.values(outcome).some((n) => n > 0))
        this.logger.warn(outcome, `reconciled leases after a restart: ${reconcileSummary(outcome)}`);
      // From now on a sandbox that ends early ends its lease within seconds (reconciler.ts).
      this.leases.reconciler.start();
      this.prewarm(this.leases);
    }
    // Listening to the other replicas before serving: a wallet's subscription hears what follows.
    await this.notices.ready();
    // A payout a crash left pending is settled as its payer says (it is also retried before the next payout).
    await this.payouts.resolvePending().catch((err: unknown) => {
      this.logger.warn({ err }, 'pending payouts could not be resolved yet');
    });
    if (await this.payouts.hasPending().catch(() => true)) this.payouts.follow();
    await this.app.listen({ host: this.config.host, port: this.config.port });
    const address = this.app.server.address();
    const port = typeof address === 'object' && address ? address.port : this.config.port;
    this.urlRef.url = publicUrl(this.config, port);
    const ssh = this.sshRef;
    if (ssh.server) ssh.port = await ssh.server.listen(this.config.host, this.config.ssh.port);
    this.reaper?.start();
    this.x402Sweeper?.start();
    return {
      url: this.url,
      mintUrl: `${this.url}/mint`,
      ...(ssh.port !== undefined && ssh.hostKey
        ? { ssh: { port: ssh.port, hostKeySha256: ssh.hostKey } }
        : {}),
    };
  }

  async close(): Promise<void> {
    // Every step runs whatever an earlier one did: one that fails must not leave the SSH port
    // listening, the Lightning backend connected or the store open. The first failure is thrown
    // once all have run.
    const failures: unknown[] = [];
    const step = async (what: string, run: () => unknown) => {
      try {
        await run();
      } catch (err) {
        failures.push(err);
        this.logger.error({ err: String(err) }, `closing the node: ${what} failed`);
      }
    };
    await step('the reaper', () => this.reaper?.stop());
    await step('the x402 sweeper', () => this.x402Sweeper?.stop());
    // First: no new request, and those under way that change something (a paid create, a stop)
    // finish before the connections close, within a bound (http/drain.ts).
    await step('the HTTP server', () => this.app.close());
    await step('the SSH server', () =>
      this.sshRef.port !== undefined ? this.sshRef.server?.close() : undefined,
    );
    await step('payouts', () => this.payouts.close());
    await step('the reconciler', () => this.leases?.reconciler.close());
    await step('the mint', () => this.mint.close());
    await step('the Lightning backend', () => this.closeLightning());
    await step('replica notices', () => this.notices.close());
    await step('the store', () => this.db.destroy());
    this.logger.debug('node closed');
    if (failures.length > 0) throw failures[0];
  }
}

interface SshRef {
  server?: SshServer;
  /** SHA256 fingerprint of the host key. */
  hostKey?: string;
  /** Set once listening. */
  port?: number;
}

/** The host name of a URL, without IPv6 brackets: what `ssh` takes. */
function hostOf(url: string): string {
  return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
}
