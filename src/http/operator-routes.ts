import { timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { AlacarteError } from '../core/errors.js';
import { leaseBooks } from '../leases/ledger.js';
import { mintBooks } from '../mint/books.js';
import { asMintDb } from '../mint/store/mint-store.js';
import type { Database } from '../store/database.js';
import { bearerOf } from './lease-schemas.js';

/** The operator's view of the books; mounted only when an operator token is configured. */
export function operatorRoutes(options: { db: Database; token: string; unit: string }): FastifyPluginAsync {
  const expected = Buffer.from(options.token);
  return async (app) => {
    app.addHook('onRequest', async (request) => {
      const presented = Buffer.from(bearerOf(request.headers.authorization) ?? '');
      if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
        throw new AlacarteError('unauthorized', 'operator token required');
      }
    });
    app.get('/ledger', async () => ledger(options.db, options.unit));
  };
}

export async function ledger(db: Database, unit: string) {
  const books = await leaseBooks(db, unit);
  const mint = await mintBooks(asMintDb(db));
  return {
    unit,
    received: books.received,
    charged: books.charged,
    refunded: books.refunded,
    held: books.held,
    mint,
    leases: {
      running: books.leases.running,
      expired: books.leases.expired,
      stopped: books.leases.stopped,
      failed: books.leases.failed,
    },
  };
}
