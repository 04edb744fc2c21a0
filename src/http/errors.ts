import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AlacarteError, type ErrorCode } from '../core/errors.js';
import { isStoreUnavailable } from '../store/database.js';
import { BODY_NOT_JSON_OBJECT } from './lease-schemas.js';

export interface ErrorBody {
  error: ErrorCode;
  message: string;
  [extra: string]: unknown;
}

/**
 * The one place where errors become HTTP answers for the /v1 API. Malformed input of any kind
 * (bad JSON, wrong content type, oversized body, schema mismatch) is a 4xx with a stable code;
 * only a genuine bug is a 500, and it says nothing about internals. `methodsAt(path)`: the methods
 * served at a path (routePathMatches), so that another method there is told which (405).
 */
export function installErrorHandling(
  app: FastifyInstance,
  methodsAt: (path: string) => readonly string[] = () => [],
): void {
  app.setErrorHandler((err: FastifyError | AlacarteError, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body, headers } = toErrorAnswer(err);
    if (status >= 500 && !(err instanceof AlacarteError)) {
      request.log.error({ err, route: request.routeOptions.url }, 'unexpected error');
    }
    for (const [name, value] of Object.entries(headers)) reply.header(name, value);
    // The route may have set the type of what it meant to send (a download's bytes): an error
    // answers in the API's JSON shape whatever that was.
    return reply.status(status).type('application/json; charset=utf-8').send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '';
    const allowed = isMintPath(path) ? [] : [...new Set(methodsAt(path))];
    if (allowed.length > 0) {
      return reply
        .status(405)
        .header('allow', allowed.join(', '))
        .send({
          error: 'invalid_request',
          message: `${request.method} is not served at ${path}; it takes ${allowed.join(', ')}`,
        } satisfies ErrorBody);
    }
    return reply
      .status(404)
      .send({ error: 'not_found', message: notFoundMessage(request.url) } satisfies ErrorBody);
  });
}

/**
 * Whether a request path (no query) is one a route's URL serves: `:name` stands for one non-empty
 * segment, a final `*` for the rest of the path.
 */
export function routePathMatches(route: string, path: string): boolean {
  const want = route.split('/');
  const have = path.split('/');
  for (let i = 0; i < want.length; i++) {
    const part = want[i] ?? '';
    if (part === '*' && i === want.length - 1) return have.length >= want.length - 1;
    const got = have[i];
    if (got === undefined) return false;
    if (part.startsWith(':') ? got === '' : got !== part) return false;
  }
  return have.length === want.length;
}

/**
 * The message of a 404 for a path no route serves. The operator routes are mounted only when the
 * node has an operator token, so an operator who asks a node without one is told why it is absent.
 */
export function notFoundMessage(url: string): string {
  if (url === '/v1/operator' || url.startsWith('/v1/operator/') || url.startsWith('/v1/operator?')) {
    return 'no such route; the operator routes (/v1/operator/ledger, /v1/operator/payout) exist only on a node started with an operator token (ALACARTE_OPERATOR_TOKEN, or operatorToken in its config file)';
  }
  return 'no such route';
}

/** Whether a raw request URL is one of the mint's (NUT routes, mounted at /mint), which answer errors in the NUT shape. */
export function isMintPath(url: string): boolean {
  return url === '/mint' || url.startsWith('/mint/') || url.startsWith('/mint?');
}

/**
 * Errors Fastify raises before any route or error handler runs (a URL that does not decode, a
 * path parameter over the length limit). Without this they would answer in Fastify's own shape;
 * the mint's routes answer in the NUT format, everything else in the API's.
 */
export function frameworkError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toErrorAnswer(err);
  if (isMintPath(request.raw.url ?? '')) {
    void reply.status(status).send({ detail: body.message, code: 10000 });
    return;
  }
  void reply.status(status).send(body);
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them: a head over the header bound
 * (`HPE_HEADER_OVERFLOW`, which Node would answer `431` in its own shape), a head that arrives too
 * slowly, malformed framing. They answer in the API's error shape too, then the connection
 * closes (the parser cannot resynchronise). The path is unknown here, so mint routes get it too.
 */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  // Node may report more errors of a request already answered: the first answer stands.
  if (err.code === 'ECONNRESET' || socket.destroyed || socket.writableEnded) return;
  let status = 400;
  let body: ErrorBody = { error: 'invalid_request', message: 'malformed HTTP request' };
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 413;
    body = { error: 'payload_too_large', message: 'the request headers are too large' };
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    body = { error: 'invalid_request', message: 'the request took too long to arrive' };
  }
  const text = JSON.stringify(body);
  // end(), not destroy(): the answer must reach a client that is still sending its head; what
  // it sends meanwhile is read and dropped until the connection closes (at most a few seconds).
  socket.on('data', () => undefined);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
  setTimeout(() => socket.destroy(), 5000).unref();
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Payload Too Large',
};

export function toErrorAnswer(err: unknown): {
  status: number;
  body: ErrorBody;
  headers: Record<string, string | string[]>;
} {
  if (err instanceof AlacarteError) {
    const headers: Record<string, string | string[]> = { ...err.headers };
    if (err.code === 'no_capacity' || err.code === 'rate_limited' || err.code === 'mint_unavailable')
      headers['retry-after'] ??= '5';
    return { status: err.status, body: { error: err.code, message: err.message, ...err.details }, headers };
  }
  const fe = err as Partial<FastifyError>;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return answer(413, 'payload_too_large', 'request body is too large');
  }
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    // Fastify's own words ("Unsupported Media Type") do not say what to send instead.
    return answer(400, 'invalid_request', BODY_NOT_JSON_OBJECT);
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
  if (isStoreUnavailable(err)) {
    const down = answer(
      503,
      'store_unavailable',
      "the node's database does not answer right now; try again shortly",
    );
    return { ...down, headers: { ...down.headers, 'retry-after': '5' } };
  }
  return answer(500, 'internal', 'internal error');
}

function answer(status: number, code: ErrorCode, message: string) {
  return { status, body: { error: code, message }, headers: {} };
}
