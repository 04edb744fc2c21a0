import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AlacarteError, type ErrorCode } from '../core/errors.js';

export interface ErrorBody {
  error: ErrorCode;
  message: string;
  [extra: string]: unknown;
}

/**
 * The one place where errors become HTTP answers for the /v1 API. Malformed input of any kind
 * (bad JSON, wrong content type, oversized body, schema mismatch) is a 4xx with a stable code;
 * only a genuine bug is a 500, and it says nothing about internals.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | AlacarteError, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body, headers } = toErrorAnswer(err);
    if (status >= 500 && !(err instanceof AlacarteError)) {
      request.log.error({ err, route: request.routeOptions.url }, 'unexpected error');
    }
    for (const [name, value] of Object.entries(headers)) reply.header(name, value);
    return reply.status(status).send(body);
  });
  app.setNotFoundHandler((_request, reply) => {
    return reply.status(404).send({ error: 'not_found', message: 'no such route' } satisfies ErrorBody);
  });
}

/**
 * Errors Fastify raises before any route or error handler runs (a URL that does not decode, a
 * path parameter over the length limit). Without this they would answer in Fastify's own shape;
 * the mint's routes answer in the NUT format, everything else in the API's.
 */
export function frameworkError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toErrorAnswer(err);
  const path = request.raw.url ?? '';
  if (path === '/mint' || path.startsWith('/mint/')) {
    void reply.status(status).send({ detail: body.message, code: 10000 });
    return;
  }
  void reply.status(status).send(body);
}

export function toErrorAnswer(err: unknown): {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
} {
  if (err instanceof AlacarteError) {
    const headers: Record<string, string> = { ...err.headers };
    if (err.code === 'no_capacity' || err.code === 'rate_limited' || err.code === 'mint_unavailable')
      headers['retry-after'] ??= '5';
    return { status: err.status, body: { error: err.code, message: err.message, ...err.details }, headers };
  }
  const fe = err as Partial<FastifyError>;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return answer(413, 'payload_too_large', 'request body is too large');
  }
  if (fe.validation || (typeof fe.code === 'string' && fe.code.startsWith('FST_ERR_CTP'))) {
    return answer(400, 'invalid_request', fe.message ?? 'malformed request');
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return answer(
      fe.statusCode,
      fe.statusCode === 404 ? 'not_found' : 'invalid_request',
      fe.message ?? 'bad request',
    );
  }
  return answer(500, 'internal', 'internal error');
}

function answer(status: number, code: ErrorCode, message: string) {
  return { status, body: { error: code, message }, headers: {} };
}
