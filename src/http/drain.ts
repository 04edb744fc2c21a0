import type { FastifyInstance } from 'fastify';
import { isMintPath } from './errors.js';

/** Default of AppOptions.drainMs. */
export const DEFAULT_DRAIN_MS = 10_000;

/** Methods whose requests change nothing: never waited for (they include event streams and terminals). */
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What a request arriving while the node closes is told (API.md's `no_capacity`: retry later). */
const CLOSING_MESSAGE = 'the node is shutting down; send the request again in a moment';

/**
 * Makes `app.close()` let the requests under way that change something (POST, PUT, PATCH, DELETE:
 * a paid create, an exec, a stop) finish before it cuts the connections, for at most `drainMs`
 * milliseconds. A request arriving meanwhile is answered `503` with `Retry-After: 1` and
 * `Connection: close` (Fastify sets that header once it is closing), in the API's error shape
 * (`no_capacity`) or, under /mint, the NUT one (`{detail, code: 10000}`, as the mint's own 503);
 * the app must be built with Fastify's `return503OnClosing: false`, whose answer is in neither.
 * After the requests finish (or the time is up) it closes every connection as before. Without
 * this a SIGTERM cut a paid create half-way: its payer got a closed connection instead of the
 * lease, and had to send the same payment again to find out.
 *
 * Reads are not waited for: an event stream, a terminal's WebSocket or a file download may last
 * for hours, and a read repeated costs nothing.
 */
export function drainOnClose(app: FastifyInstance, drainMs: number): void {
  let underWay = 0;
  let closing = false;
  let drained: (() => void) | undefined;
  app.addHook('onRequest', (request, reply, done) => {
    if (closing) {
      // Answered here, before the route: nothing of it runs, nothing is taken.
      void reply
        .status(503)
        .header('retry-after', '1')
        .send(
          isMintPath(request.raw.url ?? '')
            ? { detail: CLOSING_MESSAGE, code: 10000 }
            : { error: 'no_capacity', message: CLOSING_MESSAGE },
        );
      return;
    }
    if (!READS.has(request.method)) {
      underWay++;
      // `close` comes once the response is sent, or the client went away first.
      reply.raw.once('close', () => {
        underWay--;
        if (underWay === 0) drained?.();
      });
    }
    done();
  });
  app.addHook('preClose', (done) => {
    closing = true;
    if (underWay === 0) {
      done();
      return;
    }
    const finish = () => {
      clearTimeout(timer);
      drained = undefined;
      done();
    };
    const timer = setTimeout(finish, drainMs);
    drained = finish;
  });
}
