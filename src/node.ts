import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type Config, publicUrl } from './config.js';
import { buildApp } from './http/app.js';
import { type Logger, silentLogger } from './log.js';
import { type Database, openDatabase } from './store/database.js';

export interface NodeOptions {
  logger?: Logger;
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
    private readonly logger: Logger,
  ) {}

  static async create(config: Config, options: NodeOptions = {}): Promise<AlacarteNode> {
    const logger = options.logger ?? silentLogger();
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const db = await openDatabase(join(config.dataDir, 'alacarte.sqlite'));
    try {
      const app = await buildApp({ logger, bodyLimitBytes: config.bodyLimitBytes });
      return new AlacarteNode(config, app, db, logger);
    } catch (err) {
      await db.destroy();
      throw err;
    }
  }

  /** Starts listening; resolves with the base URL clients use. */
  async listen(): Promise<{ url: string; mintUrl: string }> {
    await this.app.listen({ host: this.config.host, port: this.config.port });
    const address = this.app.server.address();
    const port = typeof address === 'object' && address ? address.port : this.config.port;
    const url = publicUrl(this.config, port);
    return { url, mintUrl: `${url}/mint` };
  }

  async close(): Promise<void> {
    await this.app.close();
    await this.db.destroy();
    this.logger.debug('node closed');
  }
}
