import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Answer, LeaseService } from '../leases/lease-service.js';
import type { PaymentHeaders } from '../rails/payment-rail.js';
import { sourceOf } from '../ssh/ssh-server.js';
import {
  bearerOf,
  createLeaseBody,
  execBody,
  execStdin,
  extendBody,
  idempotencyKeyOf,
  parseWith,
  quoteQuery,
} from './lease-schemas.js';

export interface LeaseRoutesOptions {
  leases: LeaseService;
  /** Mints whose tokens this node accepts, its own first. */
  mints: () => readonly string[];
  unit: string;
  /**
   * Whether Lightning (L402) pays here too (API.md, "Lightning (L402) as a second payment rail"):
   * `/v1/offers` then says so under `payment.l402`, beside `payment.cashu`.
   */
  l402?: () => boolean;
  /**
   * Where x402 pays here (API.md, "x402 (EVM stablecoins) as a third payment rail"): `/v1/offers`
   * then says so under `payment.x402` (network, asset, payee, scheme).
   */
  x402?: () => Record<string, unknown>;
  /**
   * The x402 settlement a paid request's payment bought (rails/x402), for its answer's
   * `PAYMENT-RESPONSE` (v2) and `X-PAYMENT-RESPONSE` (v1) headers; undefined when it carries none.
   */
  x402Settlement?: (headers: PaymentHeaders) => Promise<object | undefined>;
  /** The node's SSH server for /v1/offers (API.md, SSH), once listening; undefined: no SSH. */
  ssh?: () => { port: number; host_key_sha256: string } | undefined;
}

/** GET /v1/offers' body (also the MCP `offers` tool's answer, agents/node-tools.ts). */
export async function offersBody(options: LeaseRoutesOptions): Promise<Record<string, unknown>> {
  const { leases, mints, unit } = options;
  const ssh = options.ssh?.();
  return {
    offers: await leases.offerList(),
    images: leases.imageList(),
    image_details: leases.imageDetails(),
    // One key per accepted rail: `cashu` as API.md has it, `l402` added when Lightning pays too.
    payment: {
      cashu: { mints: mints(), unit },
      ...(options.l402?.() ? { l402: { unit } } : {}),
      ...(options.x402 ? { x402: options.x402() } : {}),
    },
    ...(ssh ? { ssh } : {}),
  };
}

/** The /v1 lease API of API.md. Errors are thrown and mapped in http/errors.ts. */
export function leaseRoutes(options: LeaseRoutesOptions): FastifyPluginAsync {
  const { leases } = options;
  return async (app) => {
    app.get('/offers', () => offersBody(options));

    app.get('/quote', async (request) => {
      const q = parseWith(quoteQuery, request.query);
      return leases.quote(q.offer, q.seconds);
    });

    app.post('/leases', async (request, reply) => {
      const body = parseWith(createLeaseBody, request.body);
      const idem = idempotencyKeyOf(request.headers['idempotency-key']);
      const answer = await leases.create(body, request.headers, idem, sourceOf(request.ip));
      return send(reply, await withSettlement(answer, request.headers, options));
    });

    app.get<{ Params: { id: string } }>('/leases/:id', async (request, reply) => {
      return send(reply, await leases.get(request.params.id, bearerOf(request.headers.authorization)));
    });

    app.post<{ Params: { id: string } }>('/leases/:id/exec', async (request, reply) => {
      const credential = bearerOf(request.headers.authorization);
      const body = parseWith(execBody, request.body);
      // A client that goes before its answer (Ctrl-C on `alacarte exec`) ends its command, which
      // would otherwise run on to its timeout holding one of the lease's 8 exec slots.
      const gone = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) gone.abort();
      });
      const answer = await leases.exec(
        request.params.id,
        credential,
        {
          command: body.command,
          stdin: execStdin(body),
          encoding: body.encoding,
          timeoutSeconds: body.timeout_seconds,
          background: body.background,
          signal: gone.signal,
        },
        deliveredOf(reply),
      );
      return send(reply, answer);
    });

    app.post<{ Params: { id: string } }>('/leases/:id/extend', async (request, reply) => {
      const body = parseWith(extendBody, request.body);
      const idem = idempotencyKeyOf(request.headers['idempotency-key']);
      const answer = await leases.extend(
        request.params.id,
        body.seconds,
        request.headers,
        sourceOf(request.ip),
        idem,
      );
      return send(reply, await withSettlement(answer, request.headers, options));
    });

    app.delete<{ Params: { id: string } }>('/leases/:id', async (request, reply) => {
      return send(reply, await leases.stop(request.params.id, bearerOf(request.headers.authorization)));
    });
  };
}

/**
 * A paid answer with the x402 settlement of its payment in `PAYMENT-RESPONSE` and
 * `X-PAYMENT-RESPONSE` (base64 JSON, as x402 has it), when the request paid with x402; its replays
 * show the same settlement.
 */
async function withSettlement(
  answer: Answer,
  headers: PaymentHeaders,
  options: LeaseRoutesOptions,
): Promise<Answer> {
  if (!options.x402Settlement || answer.status >= 300) return answer;
  const settlement = await options.x402Settlement(headers);
  if (!settlement) return answer;
  const encoded = Buffer.from(JSON.stringify(settlement), 'utf8').toString('base64');
  return {
    ...answer,
    headers: { ...answer.headers, 'payment-response': encoded, 'x-payment-response': encoded },
  };
}

function send(reply: FastifyReply, answer: Answer): FastifyReply {
  for (const [name, value] of Object.entries(answer.headers)) reply.header(name, value);
  return reply.status(answer.status).send(answer.body);
}

/**
 * Settles once the answer has been handed to the operating system in full ('finish') or the
 * connection is gone ('close'): until then the answer is held in the node's memory.
 */
function deliveredOf(reply: FastifyReply): Promise<void> {
  return new Promise((resolve) => {
    reply.raw.once('finish', resolve);
    reply.raw.once('close', resolve);
  });
}
