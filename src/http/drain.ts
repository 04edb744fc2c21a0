import type { FastifyInstance } from 'fastify';

/** Default of AppOptions.drainMs. */
export const DEFAULT_DRAIN_MS = 10_000;

/** Methods whose requests change nothing: never waited for (they include event streams and terminals). */
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Makes `app.close()` let the requests under way that change something (POST, PUT, PATCH, DELETE:
 * a paid create, an exec, a stop) finish before it cuts the connections, for at most `drainMs`
 * milliseconds. Fastify marks itself closing first, so a request arriving meanwhile is answered
 * `503` with `Connection: close`; after the requests finish (or the time is up) it closes every
 * connection as before. Without this a SIGTERM cut a paid create half-way: its payer got a closed
 * connection instead of the lease, and had to send the same payment again to find out.
 *
 * Reads are not waited for: an event stream, a terminal's WebSocket or a file download may last
 * for hours, and a read repeated costs nothing.
 */
export function drainOnClose(app: FastifyInstance, drainMs: number): void {
  let underWay = 0;
  let drained: (() => void) | undefined;
  app.addHook('onRequest', (request, reply, done) => {
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
