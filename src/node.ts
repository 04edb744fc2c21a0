import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { type Config, publicUrl } from './config.js';
import { DEFAULT_OFFERS, type Offer, offerFromJson } from './core/offers.js';
import type { ComputeDriver } from './drivers/compute-driver.js';
import { buildApp } from './http/app.js';
import { attachRoutes } from './http/attach-routes.js';
import { docsRoutes } from './http/docs-routes.js';
import { leaseRoutes } from './http/lease-routes.js';
import { NodeMetrics } from './http/metrics.js';
import { operatorRoutes } from './http/operator-routes.js';
import { portHost, portPath, portRoutes } from './http/port-routes.js';
import { defaultWebDir, webRoutes } from './http/web-routes.js';
import { LeaseService } from './leases/lease-service.js';
import { NodeSecret } from './leases/node-secret.js';
import { Reaper } from './leases/reaper.js';
import { FakeLightningBackend } from './lightning/fake/fake-lightning.js';
import type { LightningBackend } from './lightning/lightning-backend.js';
import { type Logger, silentLogger } from './log.js';
import { mintPlugin } from './mint/http/routes.js';
import { Mint } from './mint/mint.js';
import { loadOrCreateSeed } from './mint/seed.js';
import { asMintDb } from './mint/store/mint-store.js';
import { CashuRail } from './rails/cashu/cashu-rail.js';
import { requireTrustedMintNuts } from './rails/cashu/nut-06-requirements.js';
import { L402Rail } from './rails/l402/l402-rail.js';
import { Rails } from './rails/rails.js';
import { type Database, openStore } from './store/database.js';

export interface NodeOptions {
  logger?: Logger;
  /** The compute driver; without one the node serves its mint but rents nothing. */
  driver?: ComputeDriver;
  /** Image names renters may ask for (the driver's image directory). */
  images?: readonly string[];
  clock?: () => Date;
  /** The built web page (Vite output); defaults to dist/web. */
  webDir?: string;
  /** HTTP towards trusted mints; the global fetch by default. */
  fetch?: typeof fetch;
  /** When open terminals are told that their lease ends, in ms before it (5 and 1 minute by default). */
  deadlineNoticeOffsetsMs?: readonly number[];
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
    private readonly reaper: Reaper | undefined,
    private readonly logger: Logger,
    /** The base URL clients use; final once listening. */
    private readonly urlRef: { url: string },
  ) {}

  static async create(config: Config, options: NodeOptions = {}): Promise<AlacarteNode> {
    const logger = options.logger ?? silentLogger();
    // Before anything is opened: a trusted mint the node cannot rely on stops the start-up here.
    await requireTrustedMintNuts(config.trustedMints, { fetch: options.fetch });
    prepareDataDir(config.dataDir);
    const { db, sqlite } = await openStore(join(config.dataDir, 'alacarte.sqlite'));
    try {
      // The URL is known for sure only once listening (port 0 picks one); routes read it late.
      const urlRef = { url: publicUrl(config) };
      const lightning = new FakeLightningBackend({ settleDelayMs: config.mint.lightning.settleDelayMs });
      const mint = await Mint.create({
        db: asMintDb(db),
        // Swaps commit on the connection itself (prepared statements, group commit).
        sqlite,
        lightning,
        seed: loadOrCreateSeed(join(config.dataDir, 'mint.seed')),
        logger,
        limits: { maxInputs: config.mint.maxInputs, maxOutputs: config.mint.maxOutputs },
        keysets: { inputFeePpk: config.mint.inputFeePpk },
      });
      const plugins: Array<{ prefix: string; plugin: FastifyPluginAsync }> = [
        { prefix: '/mint', plugin: mintPlugin({ mint }) },
        { prefix: '', plugin: webRoutes({ dir: options.webDir ?? defaultWebDir() }) },
        { prefix: '', plugin: docsRoutes({ publicUrl: () => urlRef.url }) },
      ];

      let leases: LeaseService | undefined;
      let reaper: Reaper | undefined;
      let metrics: NodeMetrics | undefined;
      const driver = options.driver;
      if (driver) {
        const offers: Offer[] = config.offers ? config.offers.map(offerFromJson) : [...DEFAULT_OFFERS];
        const secret = NodeSecret.loadOrCreate(join(config.dataDir, 'node.key'));
        const cashu = new CashuRail({
          mint: mint.nodePayments(),
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
          clock: options.clock,
          logger,
        });
        const rail = new Rails({ rails: [cashu, l402], payouts: cashu, logger });
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
        });
        metrics = new NodeMetrics({
          leasesByState: () => service.countByState(),
          capacity: () => service.capacity(),
        });
        leases = service;
        reaper = new Reaper(service.reconciler, logger);
        plugins.push({
          prefix: '/v1',
          plugin: leaseRoutes({
            leases: service,
            mints: () => cashu.mints(),
            unit: config.mint.unit,
          }),
        });
        plugins.push({ prefix: '/v1', plugin: attachRoutes(service) });
        plugins.push({ prefix: '', plugin: portRoutes(service, { portsDomain: config.portsDomain }) });
        if (config.operatorToken) {
          plugins.push({
            prefix: '/v1/operator',
            plugin: operatorRoutes({
              db,
              token: config.operatorToken,
              unit: config.mint.unit,
              trustedMints: config.trustedMints,
            }),
          });
        }
      }
      const app = await buildApp({ logger, bodyLimitBytes: config.bodyLimitBytes, plugins, metrics });
      return new AlacarteNode(config, app, db, mint, lightning, leases, reaper, logger, urlRef);
    } catch (err) {
      await db.destroy();
      throw err;
    }
  }

  get url(): string {
    return this.urlRef.url;
  }

  /** Reconciles leases with the driver, starts the reaper, then listens; resolves with the URLs. */
  async listen(): Promise<{ url: string; mintUrl: string }> {
    if (this.leases) {
      const outcome = await this.leases.reconcile();
      if (Object.values(outcome).some((n) => n > 0))
        this.logger.warn(outcome, 'reconciled leases after a restart');
      // From now on a sandbox that ends early ends its lease within seconds (reconciler.ts).
      this.leases.reconciler.start();
    }
    await this.app.listen({ host: this.config.host, port: this.config.port });
    const address = this.app.server.address();
    const port = typeof address === 'object' && address ? address.port : this.config.port;
    this.urlRef.url = publicUrl(this.config, port);
    this.reaper?.start();
    return { url: this.url, mintUrl: `${this.url}/mint` };
  }

  async close(): Promise<void> {
    this.reaper?.stop();
    await this.leases?.reconciler.close();
    await this.app.close();
    this.mint.close();
    await this.db.destroy();
    this.logger.debug('node closed');
  }
}
