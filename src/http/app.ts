import websocket from '@fastify/websocket';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginAsync,
  LogController,
} from 'fastify';
import type { Logger } from '../log.js';
import { frameworkError, installErrorHandling } from './errors.js';

export interface AppOptions {
  logger: Logger;
  bodyLimitBytes: number;
  /** Route plugins with the prefix they live under, e.g. the mint under '/mint'. */
  plugins?: ReadonlyArray<{ prefix: string; plugin: FastifyPluginAsync }>;
  /** Serves /metrics and times requests when given. */
  metrics?: { install(app: FastifyInstance): void };
}

/**
 * The HTTP front of a node. Request logging is our own (method, route, status, time): Fastify's
 * default would log client addresses, which the privacy model forbids.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps the instance type the default one.
    loggerInstance: options.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes,
    trustProxy: false,
    return503OnClosing: true,
    forceCloseConnections: true,
    frameworkErrors: frameworkError,
  });
  installErrorHandling(app);
  // An empty JSON body (a DELETE sent with a JSON content type) means "no body", not an error;
  // anything else goes through Fastify's own parser, which refuses prototype poisoning.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    parseJson(request, body as string, done);
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
    options: {
      maxPayload: 64 * 1024,
      // Answer a browser's `bearer.<token>` subprotocol (or any other offered) so it accepts the socket.
      handleProtocols: (protocols) => protocols.values().next().value ?? false,
    },
  });
  app.get('/healthz', async () => ({ ok: true }));
  options.metrics?.install(app);
  for (const { prefix, plugin } of options.plugins ?? []) {
    await app.register(plugin, { prefix });
  }
  return app;
}
