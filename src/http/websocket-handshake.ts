import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AlacarteError } from '../core/errors.js';
import { isMintPath, toErrorAnswer } from './errors.js';

/** An RFC 9110 token (a subprotocol's name). */
const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const PROTOCOLS = new RegExp(`^${TOKEN}(?:[ \\t]*,[ \\t]*${TOKEN})*$`);
/** 16 random bytes in base64 (RFC 6455 §4.1, item 7). */
const KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * What is wrong with a WebSocket opening handshake (RFC 6455 §4.2.1) sent to a route that
 * `takesWebSocket` or not, or undefined when nothing is. The ws library would refuse the same
 * requests, in a text/html body of its own; this says it in the API's shape first.
 */
export function handshakeRefusal(
  request: FastifyRequest,
  takesWebSocket: boolean,
): AlacarteError | undefined {
  const path = request.url.split('?', 1)[0] ?? '';
  if (!takesWebSocket)
    return new AlacarteError(
      'invalid_request',
      `${path} is not a WebSocket: send it as a plain HTTP request`,
    );
  const h = request.headers;
  if (request.method !== 'GET') return new AlacarteError('invalid_request', 'a WebSocket opens with a GET');
  // Exactly `websocket`, as the ws library takes it.
  if (
    String(h.upgrade ?? '')
      .trim()
      .toLowerCase() !== 'websocket'
  )
    return new AlacarteError('invalid_request', 'Upgrade must be websocket');
  if (typeof h['sec-websocket-key'] !== 'string' || !KEY.test(h['sec-websocket-key'].trim()))
    return new AlacarteError('invalid_request', 'Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455)');
  const version = String(h['sec-websocket-version'] ?? '');
  if (version !== '13' && version !== '8')
    return new AlacarteError('invalid_request', 'Sec-WebSocket-Version must be 13', {
      headers: { 'sec-websocket-version': '13' },
    });
  const protocols = h['sec-websocket-protocol'];
  if (protocols !== undefined) {
    const names = typeof protocols === 'string' ? protocols.split(',').map((n) => n.trim()) : [];
    if (
      typeof protocols !== 'string' ||
      !PROTOCOLS.test(protocols.trim()) ||
      new Set(names).size !== names.length
    )
      return new AlacarteError(
        'invalid_request',
        'Sec-WebSocket-Protocol must be a comma-separated list of names, each once',
      );
  }
  return undefined;
}

/**
 * Answers a WebSocket opening handshake that cannot succeed with a 400 in the API's error shape (the
 * mint's routes: the NUT shape) before @fastify/websocket hands it to the ws library, which would
 * answer in text/html, or upgrade it and close it at once when its route is plain HTTP. Routes are
 * WebSocket routes when declared with a `wsHandler` or `websocket: true` (collected from `onRoute`
 * by the caller).
 */
export function refuseBadHandshakes(app: FastifyInstance, websocketRoutes: ReadonlySet<string>): void {
  app.addHook('onRequest', async (request, reply) => {
    // What Node handed to the 'upgrade' listeners (@fastify/websocket), by its own reading.
    if ((request.raw as { upgrade?: boolean }).upgrade !== true) return;
    const route = request.routeOptions.url;
    // No route: the not-found handler answers (404, or 405 with Allow).
    if (route === undefined) return;
    const refused = handshakeRefusal(request, websocketRoutes.has(route));
    if (!refused) return;
    const { status, body, headers } = toErrorAnswer(refused);
    for (const [name, value] of Object.entries(headers)) reply.header(name, value);
    reply.header('connection', 'close');
    const shaped = isMintPath(request.url) ? { detail: body.message, code: 10000 } : body;
    return reply.status(status).type('application/json; charset=utf-8').send(shaped);
  });
}
