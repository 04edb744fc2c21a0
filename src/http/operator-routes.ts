import { timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { AlacarteError } from '../core/errors.js';
import { leaseBooksIn } from '../leases/ledger.js';
import { MAX_BOLT11_LENGTH } from '../lightning/bolt11.js';
import { mintBooks } from '../mint/books.js';
import type { PayoutService } from '../payouts/payout-service.js';
import type { Database } from '../store/database.js';
import { readSnapshot } from '../store/dialect.js';
import { bearerOf } from './lease-schemas.js';

/** The operator's view of the books; mounted only when an operator token is configured. */
export function operatorRoutes(options: {
  db: Database;
  token: string;
  unit: string;
  /** Config `trustedMints`: the ledger shows money held there apart from the own mint's. */
  trustedMints?: readonly string[];
  /** Pays earnings out (`POST /payout`); without it the route is absent. */
  payouts?: PayoutService;
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
    const payouts = options.payouts;
    if (payouts) {
      app.post('/payout', async (request) => {
        const body = payoutBody.safeParse(request.body);
        if (!body.success)
          throw new AlacarteError(
            'invalid_request',
            'body must be {"to": "<bolt11>", "from"?: "own" | "<mint url>"}',
          );
        const answer = await payouts.payout(body.data.to, body.data.from);
        return answer;
      });
    }
  };
}

export const payoutBody = z
  .object({
    to: z.string().min(1).max(MAX_BOLT11_LENGTH),
    /** 'own' or a trusted mint's URL; the default is chosen (PayoutService). */
    from: z.string().min(1).max(2048).optional(),
  })
  .strict();

/**
 * The operator ledger (API.md "Operator"), plus `bounced` (payments handed back whole) and
 * `by_mint`: `{own: figures, trusted: [{mint, ...figures}]}` with figures
 * `{received, charged, refunded, held, bounced, paid_out, payout_pending, unpaid, on_chain,
 * payable}` (leases/ledger.ts: what a payout from that mint may take), each mint balancing on its own, and the payouts (newest first, at most 1000). Two identities hold, over
 * all and per mint: received = charged + refunded + held, and charged = paid_out +
 * payout_pending + unpaid (a payout is paid out of what was charged; fees count as paid out).
 */
export async function ledger(db: Database, unit: string, trustedMints: readonly string[] = []) {
  // One snapshot: the lease books and the mint's must describe the same moment to agree.
  const { books, mint } = await readSnapshot(db, async (snapshot) => ({
    books: await leaseBooksIn(snapshot, unit, trustedMints),
    mint: await mintBooks(snapshot),
  }));
  return {
    unit,
    received: books.received,
    charged: books.charged,
    refunded: books.refunded,
    held: books.held,
    bounced: books.bounced,
    paid_out: books.paid_out,
    payout_pending: books.payout_pending,
    unpaid: books.unpaid,
    by_mint: books.byMint,
    mint,
    payouts: await payoutList(db),
    leases: {
      running: books.leases.running,
      expired: books.leases.expired,
      stopped: books.leases.stopped,
      failed: books.leases.failed,
    },
  };
}

/** The newest payouts (every one while there are fewer than 1000), for the ledger. */
async function payoutList(db: Database) {
  const rows = await db
    .selectFrom('payouts')
    .select(['id', 'source', 'amount', 'fee', 'state', 'created_at', 'resolved_at'])
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .limit(1000)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    source: r.source,
    amount: Number(r.amount),
    fee: r.fee === null ? null : Number(r.fee),
    state: r.state,
    created_at: Number(r.created_at),
    resolved_at: r.resolved_at === null ? null : Number(r.resolved_at),
  }));
}
