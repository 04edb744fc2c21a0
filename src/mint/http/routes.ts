import type { FastifyError, FastifyPluginAsync, FastifyReply } from 'fastify';
import type { z } from 'zod';
import { BODY_NOT_JSON_OBJECT } from '../../http/lease-schemas.js';
import { isStoreUnavailable } from '../../store/database.js';
import { invalidRequest, MintError, MintErrorCode } from '../errors.js';
import type { Mint } from '../mint.js';
import { Nut17Hub, type Nut17Limits } from '../nut-17.js';
import type { QuoteLimits } from '../quote-limits.js';
import { registerNut17 } from './nut-17-ws.js';
import {
  checkStateSchema,
  keysetParamSchema,
  meltQuoteSchema,
  meltSchema,
  mintQuoteSchema,
  mintSchema,
  quoteParamSchema,
  restoreSchema,
  swapSchema,
} from './schemas.js';

export interface MintRoutesOptions {
  mint: Mint;
  /** Largest accepted request body in bytes; default 1 MiB (a swap of 1000 plain inputs and 1000 outputs is ~350 KB). */
  bodyLimit?: number;
  /** Bounds of NUT-17 WebSocket subscriptions (nut-17.ts DEFAULT_NUT17_LIMITS). */
  nut17?: Partial<Nut17Limits>;
  /**
   * Bounds on the quotes made for nothing: NUT-04 mint quotes (an invoice at the Lightning node and
   * a row each) and NUT-05 melt quotes (a row each), unpaid per client address and over all
   * (quote-limits.ts; one instance each). None: unbounded (tests of other things). Beyond them a
   * quote request answers 429 with `Retry-After` and nothing is made.
   */
  quoteLimits?: { mint: QuoteLimits; melt: QuoteLimits };
  /**
   * The address a client's quotes and NUT-17 subscriptions are counted under (default: the peer
   * address as it is).
   */
  clientOf?: (ip: string) => string;
}

export const DEFAULT_MINT_BODY_LIMIT = 1024 * 1024;

/**
 * The NUT routes of the embedded mint (API.md, "The mint"), relative to the prefix the plugin is
 * registered under (`/mint`). Every error, including Fastify's own (bad JSON, body too large,
 * unknown route), answers in the NUT format `{"detail", "code"}` with a 4xx. NUT-17 subscriptions
 * are served at `/v1/ws` (nut-17-ws.ts).
 */
export const mintRoutes: FastifyPluginAsync<MintRoutesOptions> = async (app, opts) => {
  const { mint } = opts;
  const bodyLimit = opts.bodyLimit ?? DEFAULT_MINT_BODY_LIMIT;

  // Browser wallets call mints cross-origin; nothing here depends on cookies or ambient authority.
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('access-control-allow-origin', '*');
  });
  app.options('/*', async (request, reply) => {
    const asked = request.headers['access-control-request-headers'];
    reply
      .header('access-control-allow-methods', 'GET, POST, OPTIONS')
      .header(
        'access-control-allow-headers',
        typeof asked === 'string' ? asked.slice(0, 512) : 'content-type',
      )
      .header('access-control-max-age', '86400')
      .code(204)
      .send();
  });

  app.setErrorHandler((err: FastifyError | MintError | Error, request, reply) => {
    if (err instanceof MintError) {
      // 503: the mint's curve work is full (curve-pool.ts); the wallet should come back shortly.
      if (err.status === 503) reply.header('retry-after', '1');
      return reply.code(err.status).send(err.toBody());
    }
    // Fastify's own errors carry statusCode; the node's AlacarteError carries status.
    const status = (err as FastifyError).statusCode ?? (err as { status?: unknown }).status;
    if (status === 413) return reply.code(413).send({ detail: 'request body too large', code: 10000 });
    // A body sent as a form, XML or with no content type (curl -d): Fastify's 415 "Unsupported
    // Media Type" does not say what to send; answered as the node's API answers it (400).
    if ((err as FastifyError).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return reply.code(400).send(invalidRequest(BODY_NOT_JSON_OBJECT).toBody());
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return reply.code(status).send({ detail: (err as Error).message.slice(0, 200), code: 10000 });
    }
    // The node's database down: nothing was spent or issued (each is one transaction of it), or,
    // cut during a commit, the wallet learns which by asking again (NUT-07 state, NUT-09 restore).
    if (isStoreUnavailable(err))
      return reply
        .code(503)
        .header('retry-after', '5')
        .send({ detail: "the mint's database does not answer right now; try again shortly", code: 0 });
    request.log.error({ err }, 'mint request failed');
    return reply.code(500).send({ detail: 'internal error', code: 0 });
  });
  app.setNotFoundHandler((_request, reply) => {
    reply.code(404).send({ detail: 'not found', code: 10000 });
  });

  const hub = new Nut17Hub(mint, opts.nut17, app.log);
  app.addHook('onClose', async () => hub.close());
  registerNut17(app, hub, opts.clientOf);

  app.get('/v1/info', async () => mint.info());
  app.get('/v1/keys', async () => {
    await mint.refreshKeysets();
    return mint.keys();
  });
  app.get('/v1/keys/:id', async (request) => mint.keysFor(parse(keysetParamSchema, request.params).id));
  app.get('/v1/keysets', async () => {
    await mint.refreshKeysets();
    return mint.keysets();
  });

  app.post('/v1/swap', { bodyLimit }, async (request) => {
    return mint.swap(parse(swapSchema, request.body));
  });

  const limits = opts.quoteLimits;
  const clientOf = (ip: string) => (opts.clientOf ? opts.clientOf(ip) : ip);
  /** The 429 answer when `ip` holds too many unpaid quotes of `kind` (sent on `reply`), else undefined. */
  const tooMany = (ip: string, reply: FastifyReply, kind: 'mint' | 'melt') => {
    const allowance = limits?.[kind].take(clientOf(ip));
    if (allowance === undefined || allowance.ok) return undefined;
    const wait = allowance.retryAfterSeconds;
    return reply
      .code(429)
      .header('retry-after', String(wait))
      .send({ detail: `too many unpaid ${kind} quotes; pay one, or retry in ${wait} s`, code: 10000 });
  };
  if (limits) {
    // A quote that is paid, issued or melted no longer counts.
    const stop = mint.events.listen((event) => {
      if (event.kind === 'mint_quote') limits.mint.paid(event.id);
      else if (event.kind === 'melt_quote') limits.melt.paid(event.id);
    });
    app.addHook('onClose', async () => stop());
  }
  app.post('/v1/mint/quote/bolt11', { bodyLimit }, async (request, reply) => {
    const body = parse(mintQuoteSchema, request.body);
    // Every quote is an invoice at the operator's Lightning node and a row in the store: bounded
    // per address like the L402 rail's invoices, checked after the body (a bad one costs nothing).
    const refused = tooMany(request.ip, reply, 'mint');
    if (refused) return refused;
    const quote = await mint.createMintQuote(body);
    limits?.mint.issued(clientOf(request.ip), quote.quote, expiryOf(quote.expiry));
    return quote;
  });
  app.get('/v1/mint/quote/bolt11/:quote', async (request) => {
    return mint.getMintQuote(parse(quoteParamSchema, request.params).quote);
  });
  app.post('/v1/mint/bolt11', { bodyLimit }, async (request) => {
    return mint.mint(parse(mintSchema, request.body));
  });

  app.post('/v1/melt/quote/bolt11', { bodyLimit }, async (request, reply) => {
    const body = parse(meltQuoteSchema, request.body);
    if (body.options?.amountless !== undefined) {
      throw new MintError(MintErrorCode.amountlessInvoice, 'amountless invoices are not supported');
    }
    if (body.options?.mpp !== undefined) throw invalidRequest('multi-path payments are not supported');
    // No invoice, but a stored row each, asked for by anyone: the same allowance per address.
    const refused = tooMany(request.ip, reply, 'melt');
    if (refused) return refused;
    const quote = await mint.createMeltQuote(body);
    limits?.melt.issued(clientOf(request.ip), quote.quote, expiryOf(quote.expiry));
    return quote;
  });
  app.get('/v1/melt/quote/bolt11/:quote', async (request) => {
    return mint.getMeltQuote(parse(quoteParamSchema, request.params).quote);
  });
  app.post('/v1/melt/bolt11', { bodyLimit }, async (request) => {
    const body = parse(meltSchema, request.body);
    const { prefer_async: _ignored, ...melt } = body;
    return mint.melt(melt);
  });

  app.post('/v1/checkstate', { bodyLimit }, async (request) =>
    mint.checkState(parse(checkStateSchema, request.body).Ys),
  );
  app.post('/v1/restore', { bodyLimit }, async (request) =>
    mint.restore(parse(restoreSchema, request.body).outputs),
  );
};

/** A quote's expiry (seconds since the epoch; none: an hour from now) as a Date. */
function expiryOf(expiry: number | null | undefined): Date {
  return new Date((expiry ?? Math.floor(Date.now() / 1000) + 3600) * 1000);
}

/** Validates untrusted input; the first problem becomes the NUT error's detail. */
function parse<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  // Not an object at all: almost always JSON sent as text/plain (curl --data-binary -H …).
  if (issue?.code === 'invalid_type' && issue.path.length === 0 && issue.expected === 'object')
    throw invalidRequest(BODY_NOT_JSON_OBJECT);
  const where = issue && issue.path.length > 0 ? `${issue.path.slice(0, 4).join('.')}: ` : '';
  throw invalidRequest(`invalid request: ${where}${issue?.message ?? 'malformed'}`.slice(0, 300));
}

/** mintRoutes bound to its options, in the form the node's app builder registers plugins. */
export function mintPlugin(options: MintRoutesOptions): FastifyPluginAsync {
  return async (app) => mintRoutes(app, options);
}
