import { type IncomingMessage, STATUS_CODES } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import httpProxy, { type FastifyHttpProxyOptions } from '@fastify/http-proxy';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { AlacarteError } from '../core/errors.js';
import { toErrorAnswer } from './errors.js';

/**
 * Path of a lease's port on the node's own listener; the public URL of port 8080 of lease `lse_x`
 * is `<public URL>/v1/leases/lse_x/ports/8080/`, and everything below it reaches the server in the
 * sandbox with this prefix stripped (`…/ports/8080/a?b` → `/a?b`).
 */
export function portPath(leaseId: string, port: number): string {
  return `/v1/leases/${leaseId}/ports/${port}/`;
}

/**
 * Host name of a lease's port under the operator's ports domain (`portsDomain`), one origin per
 * lease and port: `8080-lse-<26 base36>.<domain>` for port 8080 of `lse_<26 base36>` (DNS labels
 * have no `_`). Everything on that host reaches the port with its path unchanged.
 */
export function portHost(leaseId: string, port: number, domain: string): string {
  return `${port}-${leaseId.replace(/^lse_/, 'lse-')}.${domain}`;
}

/** The lease id and port a Host header names under `domain`, or undefined. */
export function parsePortHost(host: string, domain: string): { leaseId: string; port: string } | undefined {
  const lower = host.toLowerCase().replace(/:[0-9]{1,5}$/, '');
  if (!lower.endsWith(`.${domain}`)) return undefined;
  const m = /^([0-9]{1,5})-lse-([0-9a-z]{26})$/.exec(lower.slice(0, -domain.length - 1));
  return m ? { port: m[1] ?? '', leaseId: `lse_${m[2]}` } : undefined;
}

export interface PortRoutesOptions {
  /**
   * Also serve each port on a host name of its own (portHost) under this domain, whose wildcard
   * DNS points at the node. Such a page has an origin of its own, so it is not sandboxed.
   */
  portsDomain?: string;
}

/** What the routes need of the lease service: where a lease's declared port is relayed. */
export interface PortTargets {
  /** The loopback URL (`http://127.0.0.1:N`) relaying the port; throws AlacarteError 4xx. */
  portTarget(leaseId: string, port: number): Promise<string>;
}

const PORT_PATH = /^\/v1\/leases\/([^/?#]{1,128})\/ports\/([^/?#]{1,16})(\/[^#]*|\?[^#]*)?$/;

/** Parses a port as it appears in a path; throws `invalid_request` for anything but 1..65535. */
export function parsePort(text: string): number {
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : 0;
  if (port < 1 || port > 65_535)
    throw new AlacarteError('invalid_request', 'a port is a number from 1 to 65535');
  return port;
}

/**
 * Sent with every answer from a lease's port. The port's pages are served from the node's own
 * origin, where the node's web page keeps a renter's wallet and lease credentials (localStorage):
 * as a sandbox without `allow-same-origin` a page runs in an opaque origin of its own and cannot
 * read them, nor set cookies or register a service worker there. Scripts, forms and popups work.
 */
export const PORT_CONTENT_POLICY =
  'sandbox allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox allow-modals allow-downloads';

/**
 * Response headers whose effect reaches past the page to its whole origin (RFC 6265 cookies,
 * Clear-Site-Data, HSTS, Alt-Svc, Network Error Logging with its Report-To groups, remembered
 * client hints). On a path URL that origin is the node's: a port could wipe the node page's
 * localStorage (the renter's wallet), set cookies that every other lease's ports and the node's
 * API receive, switch the host's HSTS off, or have the browser report every later URL of the node
 * (other leases' port URLs included) to it. Dropped there; a ports domain keeps them.
 */
const ORIGIN_WIDE_HEADERS = [
  'set-cookie',
  'clear-site-data',
  'strict-transport-security',
  'alt-svc',
  'nel',
  'report-to',
  'accept-ch',
  'critical-ch',
];

type PortRequest = FastifyRequest<{ Params: { id: string; port: string } }> & { portUpstream?: string };

/** Requests that came by a port's own host name (see PortRoutesOptions.portsDomain). */
const byHost = new WeakSet<IncomingMessage>();

/**
 * Serves every lease's declared ports through the node's own listener (API.md addition, README
 * "Port URLs"): `/v1/leases/{id}/ports/{port}/…`, HTTP and WebSockets, streamed both ways, to
 * the driver's loopback relay of that port. No credential: like a server's ports, they are for
 * anyone the renter gives the URL to (a browser included); a lease exposes only the ports it
 * declared. Hostile paths get a 4xx: a port that is not one (400 invalid_request), an unknown lease
 * or an undeclared port (404 not_found), an ended lease (409 lease_not_running). A port nothing
 * answers on is `502 bad_gateway`.
 *
 * HTTP goes through @fastify/http-proxy. A WebSocket (any upgrade) is spliced as bytes after its
 * request head, so subprotocols, extensions and frames reach the sandbox untouched; the upgrade
 * listener is installed ahead of @fastify/websocket's and hands it everything else.
 */
export function portRoutes(targets: PortTargets, options: PortRoutesOptions = {}): FastifyPluginAsync {
  return async (app) => {
    // Bodies go to the sandbox as streams, unparsed: the proxy brings its own pass-through parsers.
    await app.register(async (proxied) => {
      proxied.removeAllContentTypeParsers();
      // The proxy logs each request's path at info and an upstream's failure with the bytes the
      // server sent at warn: a lease's and its visitors' data (cookies, path tokens), 64 kB a
      // request anyone may send. Only errors are logged here; refusals are answered, not logged.
      await proxied.register(httpProxy, { ...proxyOptions(targets), logLevel: 'error' });
    });
    installListeners(app.server, targets, app, options.portsDomain?.toLowerCase());
  };
}

function proxyOptions(targets: PortTargets): FastifyHttpProxyOptions {
  return {
    prefix: '/v1/leases/:id/ports/:port',
    // Filled per request by getUpstream; a placeholder so that the plugin accepts no fixed one.
    upstream: '',
    rewritePrefix: '',
    // Done in rewriteHeaders: the plugin would put the literal `:id/:port` of the prefix there.
    internalRewriteLocationHeader: false,
    // A stream (server-sent events, a long download) may pause for as long as it likes; the client
    // ends it by going away. Its connection counts against the lease's 32.
    undici: { bodyTimeout: 0 },
    preHandler: async (request: FastifyRequest, reply: FastifyReply) => {
      const r = request as PortRequest;
      const port = parsePort(r.params.port);
      const upstream = await targets.portTarget(r.params.id, port);
      const path = request.url.split('?', 1)[0] ?? '';
      // A page's relative links resolve against its directory: `…/ports/8080` → `…/ports/8080/`.
      if (!byHost.has(request.raw) && !path.endsWith('/') && path.split('/').length === 6) {
        const query = request.url.slice(path.length);
        return reply.redirect(`${path}/${query}`, 308);
      }
      r.portUpstream = upstream;
    },
    replyOptions: {
      rewriteHeaders: (headers, request) => {
        const r = request as PortRequest | undefined;
        if (r && byHost.has(r.raw)) return headers;
        for (const name of ORIGIN_WIDE_HEADERS) delete headers[name];
        if (!r) return headers;
        // A redirect to a path of the server (`/login`) stays under the port's prefix.
        const location = headers.location;
        const rewritten =
          typeof location === 'string' && /^\/(?!\/)/.test(location)
            ? { location: `${portPath(r.params.id, Number(r.params.port)).slice(0, -1)}${location}` }
            : {};
        // The page's own policy, if any, still applies: browsers enforce every policy sent.
        const own = headers['content-security-policy'];
        const policies = own === undefined ? [] : Array.isArray(own) ? own : [String(own)];
        return { ...headers, ...rewritten, 'content-security-policy': [...policies, PORT_CONTENT_POLICY] };
      },
      // The node's host name's cookies (a visitor's, whatever set them) are not the port's to read.
      // `Expect: 100-continue` was answered by the node's own server (Node's, before the body); the
      // proxy (undici) refuses to send it on, and the request would fail as "nothing answers".
      rewriteRequestHeaders: (request, headers) => {
        const { expect: _expect, ...sent } = headers;
        if (byHost.has(request.raw as IncomingMessage)) return sent;
        const { cookie: _cookie, ...rest } = sent;
        return rest;
      },
      getUpstream: (request) => (request as PortRequest).portUpstream ?? 'http://127.0.0.1:9',
      // reply-from sends the upstream's stream even after it answered an invalid status itself
      // (a 502 through onError): not twice.
      onResponse: (_request, reply, res) => {
        const stream = (res as { stream: Readable }).stream;
        if (reply.sent) stream.destroy();
        else void reply.send(stream);
      },
      onError: (reply, { error }) => {
        const refused = proxyRefusal(error);
        const { status, body } = toErrorAnswer(refused);
        // The upstream's headers may be on the reply already (an answer with an invalid status):
        // none of them describes this answer (a content-encoding would make it unreadable).
        for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
        void reply.status(status).type('application/json; charset=utf-8').send(body);
      },
    },
  };
}

/** What the server behind a port did wrong, from what reply-from reports (its error and cause). */
export function proxyRefusal(error: unknown): AlacarteError {
  const e = error as {
    statusCode?: number;
    code?: unknown;
    cause?: { name?: unknown; message?: unknown; code?: unknown };
  };
  if (e.statusCode === 504)
    return new AlacarteError('gateway_timeout', 'the server on this port did not answer in time', {
      cause: error,
    });
  const cause = e.cause;
  const said = String(cause?.message ?? '');
  const reason = (/\(([^)]*)\)$/.exec(said)?.[1] ?? said).slice(0, 200);
  // The server answered, but not in HTTP/1.1 (a head with bare LF line ends, say): said so, with
  // the parser's reason, rather than "nothing answers".
  if (cause?.name === 'HTTPParserError')
    return new AlacarteError(
      'bad_gateway',
      `the server on this port answered with something that is not valid HTTP/1.1 (${reason})`,
      { cause: error },
    );
  // An answer the node cannot pass on: a status outside 100–599 (reply-from's own 502, without a
  // cause), a head over undici's bound, a body longer or shorter than its length said.
  const code = String(cause?.code ?? '');
  if (cause === undefined || ANSWERED_BADLY.has(code)) {
    const what = reason || 'an invalid status code';
    return new AlacarteError(
      'bad_gateway',
      `the server on this port answered with something the node cannot pass on (${what})`,
      { cause: error },
    );
  }
  // Anything else: no listener (the relay closes at once), or the connection failed first.
  return new AlacarteError('bad_gateway', 'nothing answers on this port in the lease', { cause: error });
}

/** undici's errors for an answer that came but cannot be relayed. */
const ANSWERED_BADLY = new Set([
  'UND_ERR_HEADERS_OVERFLOW',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
]);

/**
 * Requests by a port's host name are given the port's path before Fastify routes them; upgrades
 * (WebSockets) to a port are spliced to it, the rest go to the other listeners (@fastify/websocket).
 */
function installListeners(
  server: FastifyInstance['server'],
  targets: PortTargets,
  app: Parameters<FastifyPluginAsync>[0],
  domain: string | undefined,
): void {
  const open = new Set<Duplex>();
  const toPortPath = (req: IncomingMessage): void => {
    if (!domain || typeof req.headers.host !== 'string') return;
    const named = parsePortHost(req.headers.host, domain);
    if (!named) return;
    byHost.add(req);
    const url = req.url ?? '/';
    req.url = `/v1/leases/${named.leaseId}/ports/${named.port}${url.startsWith('/') ? url : `/${url}`}`;
  };
  app.addHook('onReady', async () => {
    const requests = server.listeners('request') as Array<(req: IncomingMessage, res: unknown) => void>;
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: unknown) => {
      toPortPath(req);
      for (const l of requests) l.call(server, req, res);
    });
    const upgrades = server.listeners('upgrade') as Array<
      (req: IncomingMessage, s: Duplex, h: Buffer) => void
    >;
    server.removeAllListeners('upgrade');
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      toPortPath(req);
      const match = PORT_PATH.exec(req.url ?? '');
      if (!match) {
        for (const l of upgrades) l.call(server, req, socket, head);
        return;
      }
      socket.on('error', () => socket.destroy());
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      void splice(targets, req, socket, head, match).catch((err: unknown) => refuse(socket, err));
    });
  });
  // Before the server's close, which would wait for them (a WebSocket may stay open for days): the
  // node's stop cuts the tunnels into its leases, as it cuts SSH sessions.
  app.addHook('preClose', async () => {
    for (const s of open) s.destroy();
  });
}

async function splice(
  targets: PortTargets,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  match: RegExpExecArray,
): Promise<void> {
  const port = parsePort(match[2] ?? '');
  // Not decoded: a lease id has no character that needs it, and a stray `%` must stay a 404.
  const target = new URL(await targets.portTarget(match[1] ?? '', port));
  if (client.destroyed) return;
  const rest = match[3] ?? '/';
  const path = rest.startsWith('?') ? `/${rest}` : rest;
  const upstream: Socket = connect({ host: target.hostname, port: Number(target.port) });
  let answered = false;
  upstream.once('error', (err) => {
    if (!answered)
      refuse(
        client,
        new AlacarteError('bad_gateway', 'nothing answers on this port in the lease', { cause: err }),
      );
    else client.destroy();
  });
  upstream.once('connect', () => {
    // The client's request head as it came, its path without the prefix; then bytes both ways.
    // On a path URL the node's cookies stay out, and origin-wide headers out of the answer's head.
    const shared = !byHost.has(req);
    const lines = [`${req.method ?? 'GET'} ${path} HTTP/${req.httpVersion}`];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
      if (!(shared && req.rawHeaders[i]?.toLowerCase() === 'cookie'))
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length) upstream.write(head);
    upstream.once('data', () => {
      answered = true;
    });
    client.pipe(upstream);
    if (shared) pipeFilteringHead(upstream, client);
    else upstream.pipe(client, { end: false });
    // The client gone (its FIN) and nothing more flowing: both ends are cut, the relay's at once (a
    // reset, so that its process and the lease's connection slot go too).
    client.once('end', () => {
      (client as Socket).setTimeout(IDLE_AFTER_CLIENT_END_MS, () => {
        upstream.resetAndDestroy();
        client.destroy();
      });
    });
    client.once('close', () => upstream.resetAndDestroy());
    upstream.once('close', () => {
      // A relay that closes before any byte: nothing listens in the sandbox.
      if (!answered)
        refuse(client, new AlacarteError('bad_gateway', 'nothing answers on this port in the lease'));
      else client.end();
    });
  });
}

/**
 * After an upgraded connection's client has ended its side (FIN), how long it may stay without a
 * byte either way: a server in the lease that waits for the client to go would otherwise keep the
 * connection (and the node's close, which waits for it) for ever.
 */
const IDLE_AFTER_CLIENT_END_MS = 10_000;

/** Longest answer head a port's upgrade may send on a path URL; longer cuts the connection. */
const MAX_UPGRADE_HEAD_BYTES = 64 * 1024;

/**
 * Pipes an upgrade's answer to the client with the ORIGIN_WIDE_HEADERS lines of its head removed
 * (a browser stores a handshake's cookies like any other's); what follows the head is untouched.
 */
function pipeFilteringHead(upstream: Socket, client: Duplex): void {
  let pending = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    const end = pending.indexOf('\r\n\r\n');
    if (end < 0) {
      if (pending.length > MAX_UPGRADE_HEAD_BYTES) {
        upstream.destroy();
        client.destroy();
      }
      return;
    }
    upstream.off('data', onData);
    const kept = pending
      .subarray(0, end)
      .toString('latin1')
      .split('\r\n')
      .filter((line) => !ORIGIN_WIDE_HEADERS.includes(line.split(':', 1)[0]?.trim().toLowerCase() ?? ''));
    upstream.pause();
    client.write(Buffer.from(`${kept.join('\r\n')}\r\n\r\n`, 'latin1'));
    client.write(pending.subarray(end + 4));
    upstream.pipe(client, { end: false });
  };
  upstream.on('data', onData);
}

/** Answers a refused upgrade with the API's JSON error, then closes. */
function refuse(socket: Duplex, err: unknown): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const { status, body } = toErrorAnswer(err);
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
  setTimeout(() => socket.destroy(), 5000).unref();
}
