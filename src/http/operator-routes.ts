import { timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { AlacarteError } from '../core/errors.js';
import { leaseBooks } from '../leases/ledger.js';
import { mintBooks } from '../mint/books.js';
import { asMintDb } from '../mint/store/mint-store.js';
import type { Database } from '../store/database.js';
import { bearerOf } from './lease-schemas.js';

/** The operator's view of the books; mounted only when an operator token is configured. */
export function operatorRoutes(options: {
  db: Database;
  token: string;
  unit: string;
  /** Config `trustedMints`: the ledger shows money held there apart from the own mint's. */
  trustedMints?: readonly string[];
}): FastifyPluginAsync {
  const expected = Buffer.from(options.token);
  return async (app) => {
    app.addHook('onRequest', async (request) => {
      const presented = Buffer.from(bearerOf(request.headers.authorization) ?? '');
      if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
        throw new AlacarteError('unauthorized', 'operator token required');
      }
    });
    app.get('/ledger', async () => ledger(options.db, options.unit, options.trustedMints));
  };
}

/**
 * The operator ledger (API.md "Operator"), plus `bounced` (payments handed back whole) and
 * `by_mint`: `{own: figures, trusted: [{mint, ...figures}]}` with figures
 * `{received, charged, refunded, held, bounced}`, each mint balancing on its own.
 */
export async function ledger(db: Database, unit: string, trustedMints: readonly string[] = []) {
  const books = await leaseBooks(db, unit, trustedMints);
  const mint = await mintBooks(asMintDb(db));
  return {
    unit,
    received: books.received,
    charged: books.charged,
    refunded: books.refunded,
    held: books.held,
    bounced: books.bounced,
    by_mint: books.byMint,
    mint,
    leases: {
      running: books.leases.running,
      expired: books.leases.expired,
      stopped: books.leases.stopped,
      failed: books.leases.failed,
    },
  };
}
