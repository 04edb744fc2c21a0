import http from 'node:http';
import https from 'node:https';

/** Largest JSON answer or streamed line read from a node, in bytes: bounds what a node can make us buffer. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface RestClientOptions {
  /** Base URL of the node's REST interface, e.g. https://127.0.0.1:8080 (no trailing path). */
  url: string;
  /** Headers sent on every request (credentials: never logged, never put in errors). */
  headers: Record<string, string>;
  /**
   * PEM certificate the server must present (its own self-signed cert): the only trust anchor, so a
   * server with any other certificate is refused. Absent: the system's CAs (https) or plain http.
   */
  tlsCertPem?: string;
  /** Time-out of one non-streamed request, in ms (default 30 s). */
  timeoutMs?: number;
}

/** An HTTP answer: the status and the parsed JSON body (undefined when the body is not JSON). */
export interface RestAnswer {
  status: number;
  body: unknown;
}

/** The request never got an answer (connection refused, TLS refused, time-out): its effect is unknown. */
export class RestTransportError extends Error {
  override name = 'RestTransportError';
}

/**
 * A small JSON-over-HTTPS client for a Lightning node's REST interface, with the node's own
 * certificate pinned (a `ca` of exactly that certificate; certificate checks are never turned off),
 * bounded answers, and JSON-lines streams (LND's server-streaming calls).
 */
export class RestClient {
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;

  constructor(private readonly options: RestClientOptions) {
    this.base = new URL(options.url);
    if (this.base.protocol !== 'https:' && this.base.protocol !== 'http:') {
      throw new Error(`unsupported URL scheme ${this.base.protocol}`);
    }
    this.agent =
      this.base.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, ...(options.tlsCertPem ? { ca: options.tlsCertPem } : {}) })
        : new http.Agent({ keepAlive: true });
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** One request with a JSON body (or none); resolves with any HTTP status, rejects with RestTransportError. */
  async request(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    timeoutMs?: number,
    abort?: AbortSignal,
  ): Promise<RestAnswer> {
    const timeout = AbortSignal.timeout(timeoutMs ?? this.timeoutMs);
    const signal = abort ? AbortSignal.any([timeout, abort]) : timeout;
    let text = '';
    const res = await this.open(method, path, body, signal);
    try {
      for await (const chunk of res) {
        text += chunk;
        if (text.length > MAX_BODY_BYTES) throw new RestTransportError('answer too large');
      }
    } catch (err) {
      throw err instanceof RestTransportError ? err : new RestTransportError(describe(err));
    }
    return { status: res.statusCode ?? 0, body: parseJson(text) };
  }

  /**
   * A streamed call: `onLine` gets each JSON line as it arrives until the stream ends, `signal`
   * aborts, or `onLine` returns true (done). Resolves with the HTTP status; transport errors reject.
   */
  async stream(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal,
    onLine: (line: unknown, status: number) => boolean | undefined,
  ): Promise<number> {
    const res = await this.open(method, path, body, signal);
    const status = res.statusCode ?? 0;
    let pending = '';
    try {
      for await (const chunk of res) {
        pending += chunk;
        let newline = pending.indexOf('\n');
        while (newline >= 0) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line !== '' && onLine(parseJson(line), status) === true) {
            res.destroy();
            return status;
          }
          newline = pending.indexOf('\n');
        }
        if (pending.length > MAX_BODY_BYTES) throw new RestTransportError('streamed line too large');
      }
      if (pending.trim() !== '') onLine(parseJson(pending.trim()), status);
    } catch (err) {
      if (signal.aborted) return status;
      throw err instanceof RestTransportError ? err : new RestTransportError(describe(err));
    }
    return status;
  }

  /** Stops keeping connections open. */
  close(): void {
    this.agent.destroy();
  }

  private open(
    method: string,
    path: string,
    body: unknown,
    signal: AbortSignal,
  ): Promise<http.IncomingMessage> {
    const url = new URL(path, this.base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(
        url,
        {
          method,
          agent: this.agent,
          signal,
          headers: {
            ...this.options.headers,
            accept: 'application/json',
            ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          },
        },
        (res) => {
          res.setEncoding('utf8');
          resolve(res);
        },
      );
      req.on('error', (err) => reject(new RestTransportError(describe(err))));
      req.end(payload);
    });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** An error's message without anything from the request (no headers, no credentials). */
function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** A plain-object view of unknown JSON, for reading fields without trusting the shape. */
export function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}
