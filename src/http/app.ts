import type { Server } from 'node:http';
import { BlockList, isIPv6, type Socket } from 'node:net';
import websocket from '@fastify/websocket';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginAsync,
  LogController,
} from 'fastify';
import { AlacarteError } from '../core/errors.js';
import type { Logger } from '../log.js';
import { sourceOf } from '../ssh/ssh-server.js';
import { DEFAULT_DRAIN_MS, drainOnClose } from './drain.js';
import { answerClientError, frameworkError, installErrorHandling, routePathMatches } from './errors.js';
import { refuseBadHandshakes } from './websocket-handshake.js';

/**
 * The largest payment header the API takes (`X-Cashu`), in bytes: a token of a few hundred
 * proofs. Larger ones get `413 payload_too_large` from the payment rail.
 */
export const MAX_PAYMENT_HEADER_BYTES = 64 * 1024;

/**
 * Bound of a request's whole head (request line and all headers), in bytes: a largest payment
 * header plus room for everything else. Node's own default (16 KiB) is too small for such a
 * token; a head over this bound is answered `413 payload_too_large` before any route runs.
 */
export const MAX_HEADER_BYTES = MAX_PAYMENT_HEADER_BYTES + 32 * 1024;

/** Default of AppOptions.maxConnections: about 100 MiB of request heads at most. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** Default of AppOptions.maxConnectionsPerAddress: a sixteenth of all. */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 64;

export interface AppOptions {
  logger: Logger;
  bodyLimitBytes: number;
  /** Route plugins with the prefix they live under, e.g. the mint under '/mint'. */
  plugins?: ReadonlyArray<{ prefix: string; plugin: FastifyPluginAsync }>;
  /**
   * Connections held open at once (HTTP and WebSocket); more are closed as they arrive. Each may
   * hold a request head of up to MAX_HEADER_BYTES while it arrives, so this bounds that memory.
   */
  maxConnections?: number;
  /**
   * Connections one client address (an IPv6 one by its /64) may hold once the server holds half
   * of `maxConnections`; beyond it a new one is closed as it arrives, so that one client cannot
   * take them all and lock everyone else out (DEFAULT_MAX_CONNECTIONS_PER_ADDRESS; 0: no such
   * bound). The proxies named in `trustProxy` are exempt: every client behind them shares their
   * address.
   */
  maxConnectionsPerAddress?: number;
  /**
   * Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed: behind them
   * `request.ip` is the client's, so per-client bounds (L402 and mint-quote invoices) apply per
   * client. Default none: the peer's own address.
   */
  trustProxy?: readonly string[];
  /**
   * Whether the store answers (a trivial statement, bounded in time); /healthz says 503 when not.
   * Absent: /healthz always says ok.
   */
  storeAnswers?: () => Promise<boolean>;
  /** Serves /metrics and times requests when given. */
  metrics?: { install(app: FastifyInstance): void };
  /**
   * Longest close() waits for the requests under way that change something (drain.ts), in
   * milliseconds; DEFAULT_DRAIN_MS by default.
   */
  drainMs?: number;
}

/** A route as Fastify registered it: `GET`, `/v1/leases/:id`. */
export interface RegisteredRoute {
  method: string;
  url: string;
}

const REGISTERED = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Every route `app` (made by buildApp) registered, HEAD routes Fastify adds for GET included. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return REGISTERED.get(app) ?? [];
}

/** Fastify's own bound on a plugin's start and a close hook, ms (its default). */
const DEFAULT_PLUGIN_TIMEOUT_MS = 10_000;
/** What a close needs beyond the drain's wait: cutting the connections, the other hooks. */
const DRAIN_MARGIN_MS = 5_000;

/**
 * The HTTP front of a node. Request logging is our own (method, route, status, time): Fastify's
 * default would log client addresses, which the privacy model forbids.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
  const app = Fastify({
    // Fastify bounds each close hook by this too: the drain (a preClose hook) must fit in it, or
    // close() fails with "Plugin did not start in time" once a request outlives the drain.
    pluginTimeout: Math.max(DEFAULT_PLUGIN_TIMEOUT_MS, drainMs + DRAIN_MARGIN_MS),
    // pino's Logger is a FastifyBaseLogger; the cast keeps the instance type the default one.
    loggerInstance: options.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes,
    trustProxy: options.trustProxy && options.trustProxy.length > 0 ? [...options.trustProxy] : false,
    // drain.ts answers the requests arriving while it closes, in the API's error shape.
    return503OnClosing: false,
    forceCloseConnections: true,
    frameworkErrors: frameworkError,
    http: { maxHeaderSize: MAX_HEADER_BYTES },
    clientErrorHandler: answerClientError,
  });
  app.server.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  boundConnectionsPerAddress(
    app.server,
    options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    app.server.maxConnections,
    options.trustProxy ?? [],
  );
  // Before any route: the published contract (http/openapi.ts) is checked against this list.
  const routes: RegisteredRoute[] = [];
  REGISTERED.set(app, routes);
  // Routes that take a WebSocket (@fastify/websocket's `wsHandler` or `websocket: true`).
  const websocketRoutes = new Set<string>();
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
    const ws = route as { wsHandler?: unknown; websocket?: unknown };
    if (ws.wsHandler !== undefined || ws.websocket === true) websocketRoutes.add(route.url);
  });
  installErrorHandling(app, (path) =>
    routes.filter((r) => routePathMatches(r.url, path)).map((r) => r.method),
  );
  drainOnClose(app, drainMs);
  // An empty JSON body (a DELETE sent with a JSON content type) means "no body", not an error;
  // anything else goes through Fastify's own parser, which refuses prototype poisoning.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    parseJson(request, body as string, (err, value) => {
      if (err && isJson(body as string)) {
        // Valid JSON refused for a `__proto__` or `constructor.prototype` key: Fastify would say
        // "not valid JSON", which it is.
        return done(
          new AlacarteError(
            'invalid_request',
            'the body must not hold a "__proto__" or "constructor.prototype" key',
          ),
          undefined,
        );
      }
      done(err, value);
    });
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug(
      {
        method: request.method,
        route: request.routeOptions.url,
        status: reply.statusCode,
        ms: reply.elapsedTime,
      },
      'request',
    );
  });
  await app.register(websocket, {
    errorHandler: (error, socket, request) => {
      // A frame the ws library refuses (over maxPayload, malformed: its WS_ERR_* codes) or a
      // connection reset is the client's doing, which a client could repeat at will: not an error
      // of the node's. Anything else is (a handler that threw).
      const code = (error as { code?: unknown }).code;
      if (
        typeof code === 'string' &&
        (code.startsWith('WS_ERR_') || code === 'ECONNRESET' || code === 'EPIPE')
      )
        request.log.debug(
          { code, route: request.routeOptions.url },
          'websocket closed for what its client sent',
        );
      else request.log.error({ err: error, route: request.routeOptions.url }, 'websocket handler failed');
      socket.terminate();
    },
    options: {
      maxPayload: 64 * 1024,
      // Answer a browser's `bearer.<token>` subprotocol (or any other offered) so it accepts the socket.
      handleProtocols: (protocols) => protocols.values().next().value ?? false,
    },
  });
  refuseBadHandshakes(app, websocketRoutes);
  app.get('/healthz', async (_request, reply) => {
    // What a load balancer asks: a node whose database does not answer cannot serve.
    const storeAnswers = await (options.storeAnswers?.() ?? Promise.resolve(true));
    if (storeAnswers) return { ok: true };
    return reply
      .status(503)
      .header('retry-after', '5')
      .send({ ok: false, error: 'store_unavailable', message: "the node's database does not answer" });
  });
  options.metrics?.install(app);
  for (const { prefix, plugin } of options.plugins ?? []) {
    await app.register(plugin, { prefix });
  }
  return app;
}

/**
 * Closes a new connection from a client address (sourceOf: an IPv6 one by its /64) that holds
 * `max` already while the server holds at least half of `limit`: one client may use many
 * connections while there is room, but never crowd out the rest. Connections from the `exempt`
 * proxies are not counted. Counts live in memory only, by address, and go with the address's last
 * connection: nothing is stored or logged.
 */
function boundConnectionsPerAddress(
  server: Server,
  max: number,
  limit: number,
  exempt: readonly string[],
): void {
  if (max <= 0) return;
  const proxies = new BlockList();
  for (const entry of exempt) {
    const [address = '', prefix] = entry.split('/');
    const family = isIPv6(address) ? 'ipv6' : 'ipv4';
    if (prefix === undefined) proxies.addAddress(address, family);
    else proxies.addSubnet(address, Number(prefix), family);
  }
  const open = new Map<string, number>();
  let total = 0;
  server.on('connection', (socket: Socket) => {
    const remote = socket.remoteAddress;
    if (remote === undefined) return;
    // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
    const peer = /^::ffff:([0-9.]+)$/i.exec(remote)?.[1] ?? remote;
    if (exempt.length > 0 && proxies.check(peer, isIPv6(peer) ? 'ipv6' : 'ipv4')) return;
    const key = sourceOf(peer);
    const held = open.get(key) ?? 0;
    if (held >= max && total >= limit / 2) {
      socket.destroy();
      return;
    }
    open.set(key, held + 1);
    total++;
    socket.once('close', () => {
      total--;
      const left = (open.get(key) ?? 1) - 1;
      if (left <= 0) open.delete(key);
      else open.set(key, left);
    });
  });
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
