import { X509Certificate } from 'node:crypto';
import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import type { PeerCertificate } from 'node:tls';
import WebSocket from 'ws';
import { z } from 'zod';

/**
 * Where the LXD daemon answers: its unix socket on this machine, or a remote cluster member's
 * HTTPS address with the client certificate the cluster trusts (`lxc config trust add`) and the
 * server's own certificate, pinned (LXD's certificates are self-signed, so no CA vouches for them).
 */
export type LxdEndpoint =
  | { socketPath: string }
  | {
      /** e.g. https://lxd1.example:8443 */
      url: string;
      /** PEM client certificate and key. */
      clientCert: string;
      clientKey: string;
      /** PEM certificate of the cluster (`lxc info` shows it; the same for every member). */
      serverCert: string;
    };

/** An answer of the LXD REST API that is not a success: its status code and message. */
export class LxdError extends Error {
  override readonly name = 'LxdError';
  constructor(
    message: string,
    /** HTTP status (404: no such object). */
    readonly status: number,
    /** The operation that failed, when it was one (an exec's still holds its exit status). */
    readonly operation?: LxdOperation,
  ) {
    super(message);
  }
}

/** LXD's response envelope (doc: rest-api.md "Return values"). */
const envelope = z.object({
  type: z.enum(['sync', 'async', 'error']),
  status_code: z.number().optional(),
  error_code: z.number().optional(),
  error: z.string().optional(),
  operation: z.string().optional(),
  metadata: z.unknown(),
});

/** A background operation (doc: rest-api.md "Background operation"). */
export const operationSchema = z.object({
  id: z.string().max(64),
  status: z.string(),
  status_code: z.number(),
  err: z.string().optional().default(''),
  metadata: z.record(z.string(), z.unknown()).nullable().optional(),
});
export type LxdOperation = z.infer<typeof operationSchema>;

/** Largest JSON answer read from LXD; more is refused, never buffered. */
const MAX_ANSWER_BYTES = 16 << 20;
/** A request that gets no answer at all in this long fails (waits pass their own longer bound). */
const REQUEST_TIMEOUT_MS = 60_000;

/**
 * A thin typed client for LXD's documented REST API (https://documentation.ubuntu.com/lxd, "REST
 * API"): JSON requests, background operations, operation websockets and image upload. Every answer
 * is checked with a zod schema before use and read up to a bound. No npm package for LXD is
 * maintained; the API is small and stable (`/1.0`), so this is the one place that speaks it.
 */
export class LxdClient {
  constructor(readonly endpoint: LxdEndpoint) {}

  /** True when the daemon is on this machine (its unix socket), so host paths can be mounted. */
  get local(): boolean {
    return 'socketPath' in this.endpoint;
  }

  /**
   * A synchronous request; resolves with the envelope's metadata checked by `schema`. Throws
   * LxdError with LXD's message for an error answer.
   */
  async get<T>(path: string, schema: z.ZodType<T>): Promise<T> {
    return schema.parse((await this.call('GET', path)).metadata);
  }

  /** Any request; resolves with the parsed envelope. Async answers carry `operation`. */
  async call(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<z.infer<typeof envelope>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const res = await this.send(
      method,
      path,
      payload ? { 'content-type': 'application/json' } : {},
      timeoutMs,
      (req) => req.end(payload),
    );
    return parseEnvelope(res);
  }

  /**
   * A request that starts a background operation (create, start, exec...) and waits for its end
   * (up to `timeoutSec`); resolves with the finished operation. Throws LxdError when it failed.
   */
  async run(method: string, path: string, body: unknown, timeoutSec = 120): Promise<LxdOperation> {
    const started = await this.call(method, path, body);
    const op = operationSchema.parse(started.metadata);
    return this.wait(op.id, timeoutSec);
  }

  /**
   * Waits for an operation to end (GET /1.0/operations/<id>/wait), up to `timeoutSec` or for as
   * long as it runs (an exec's command); throws LxdError if it failed.
   */
  async wait(id: string, timeoutSec?: number): Promise<LxdOperation> {
    const answer = await this.call(
      'GET',
      `/1.0/operations/${encodeURIComponent(id)}/wait?timeout=${timeoutSec === undefined ? -1 : Math.ceil(timeoutSec)}`,
      undefined,
      timeoutSec === undefined ? 0 : timeoutSec * 1000 + 10_000,
    );
    const op = operationSchema.parse(answer.metadata);
    if (op.status_code >= 400) throw new LxdError(op.err || op.status, op.status_code, op);
    return op;
  }

  /** Uploads a stream as the body of a POST (image import); resolves with the envelope. */
  async upload(
    path: string,
    body: Readable,
    headers: Record<string, string>,
  ): Promise<z.infer<typeof envelope>> {
    const res = await this.send('POST', path, headers, 600_000, (req) => {
      body.once('error', (e) => req.destroy(e));
      body.pipe(req);
    });
    return parseEnvelope(res);
  }

  /** Opens an operation's websocket (exec's stdin, stdout, stderr and control channels). */
  websocket(operationId: string, secret: string): WebSocket {
    const path = `/1.0/operations/${encodeURIComponent(operationId)}/websocket?secret=${encodeURIComponent(secret)}`;
    const ep = this.endpoint;
    if ('socketPath' in ep)
      return new WebSocket(`ws+unix://${ep.socketPath}:${path}`, { maxPayload: 1 << 20 });
    const url = new URL(path, ep.url.replace(/^http/, 'ws'));
    // ws hands TLS options to https.request (its own typing of checkServerIdentity is narrower).
    const options = { maxPayload: 1 << 20, ...this.tlsOptions(ep) } as unknown as WebSocket.ClientOptions;
    return new WebSocket(url, options);
  }

  private tlsOptions(ep: Exclude<LxdEndpoint, { socketPath: string }>) {
    const pinned = new X509Certificate(ep.serverCert).fingerprint256;
    return {
      cert: ep.clientCert,
      key: ep.clientKey,
      ca: ep.serverCert,
      // The pinned certificate is the only one trusted, whatever name it carries.
      checkServerIdentity: (_host: string, cert: PeerCertificate) =>
        cert.fingerprint256 === pinned
          ? undefined
          : new Error('LXD server certificate does not match the pinned one'),
    };
  }

  private send(
    method: string,
    path: string,
    headers: Record<string, string>,
    timeoutMs: number,
    write: (req: ClientRequest) => void,
  ): Promise<IncomingMessage> {
    const ep = this.endpoint;
    return new Promise((resolve, reject) => {
      const req =
        'socketPath' in ep
          ? httpRequest({ socketPath: ep.socketPath, path, method, headers: { ...headers, host: 'lxd' } })
          : httpsRequest(new URL(path, ep.url), { method, headers, ...this.tlsOptions(ep) });
      req.setTimeout(timeoutMs, () =>
        req.destroy(new LxdError(`LXD ${method} ${path}: no answer in time`, 504)),
      );
      req.once('error', reject);
      req.once('response', resolve);
      write(req);
    });
  }
}

async function parseEnvelope(res: IncomingMessage): Promise<z.infer<typeof envelope>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      res.destroy();
      throw new LxdError('LXD answer too large', 502);
    }
    chunks.push(chunk);
  }
  let parsed: z.infer<typeof envelope>;
  try {
    parsed = envelope.parse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
  } catch {
    throw new LxdError(`LXD answered HTTP ${res.statusCode} with something that is not its API`, 502);
  }
  if (parsed.type === 'error')
    throw new LxdError(parsed.error ?? 'LXD error', parsed.error_code ?? res.statusCode ?? 500);
  return parsed;
}
