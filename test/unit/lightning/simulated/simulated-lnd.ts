import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { decodeBolt11 } from '../../../../src/lightning/bolt11.js';
import { type SimInvoice, type SimPayment, SimulatedNode } from './simulated-node.js';

/**
 * A SIMULATED LND REST interface (grpc-gateway), written from LND's published REST reference:
 * POST /v1/invoices, GET /v1/invoice/{r_hash_str}, GET /v1/invoices/subscribe, POST /v2/router/send,
 * GET /v2/router/track/{payment_hash}. int64s are strings, bytes base64, streams are JSON lines of
 * `{"result": …}` or `{"error": …}`. HTTPS with its own self-signed certificate; every call needs the
 * `Grpc-Metadata-macaroon` header with the macaroon in hex.
 */
export class SimulatedLnd {
  readonly node = new SimulatedNode();
  /** A hostile or broken node: when set, every call is answered with this raw body (status 200). */
  rawAnswer: string | undefined;
  /** Open invoice-subscription streams. */
  subscriptions = 0;
  private server: Server | undefined;
  private readonly open = new Set<ServerResponse>();

  constructor(
    private readonly tls: { cert: string; key: string },
    readonly macaroonHex: string,
  ) {}

  async start(): Promise<string> {
    this.server = createServer({ cert: this.tls.cert, key: this.tls.key }, (req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Breaks every open stream, as a restart of LND or a network hiccup would. */
  dropStreams(): void {
    for (const res of this.open) res.destroy();
  }

  async stop(): Promise<void> {
    for (const res of this.open) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers['grpc-metadata-macaroon'] !== this.macaroonHex) {
      return json(res, 500, {
        code: 2,
        message: 'verification failed: signature mismatch after caveat verification',
      });
    }
    if (this.rawAnswer !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(this.rawAnswer);
      return;
    }
    const url = new URL(req.url ?? '/', 'https://lnd');
    let body: Record<string, unknown> = {};
    if (req.method === 'POST') {
      let text = '';
      for await (const chunk of req) text += chunk;
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        json(res, 400, { code: 3, message: 'invalid JSON' });
        return;
      }
    }
    const path = url.pathname;
    if (req.method === 'POST' && path === '/v1/invoices') return this.addInvoice(res, body);
    if (req.method === 'GET' && path === '/v1/invoices/subscribe') return this.subscribe(res, url);
    if (req.method === 'GET' && path.startsWith('/v1/invoice/')) return this.lookup(res, path.slice(12));
    if (req.method === 'POST' && path === '/v2/router/send') return this.send(res, body);
    if (req.method === 'GET' && path.startsWith('/v2/router/track/'))
      return this.track(res, path.slice(17), url);
    json(res, 404, { code: 5, message: 'Not Found' });
  }

  private addInvoice(res: ServerResponse, body: Record<string, unknown>): void {
    const value = typeof body.value === 'string' ? BigInt(body.value) : 0n;
    const expiry = typeof body.expiry === 'string' ? Number(body.expiry) : 86_400;
    const invoice = this.node.createInvoice(value * 1000n, String(body.memo ?? ''), expiry);
    json(res, 200, {
      r_hash: Buffer.from(invoice.paymentHash, 'hex').toString('base64'),
      payment_request: invoice.bolt11,
      add_index: String(invoice.addIndex),
      payment_addr: Buffer.alloc(32).toString('base64'),
    });
  }

  private lookup(res: ServerResponse, rHashStr: string): void {
    const invoice = this.node.invoices.get(rHashStr);
    if (!invoice) {
      json(res, 500, { code: 2, message: 'unable to locate invoice' });
      return;
    }
    json(res, 200, lndInvoice(invoice));
  }

  private subscribe(res: ServerResponse, url: URL): void {
    const settleIndex = Number(url.searchParams.get('settle_index') ?? '0');
    res.writeHead(200, { 'content-type': 'application/json' });
    this.open.add(res);
    this.subscriptions++;
    // LND: a non-zero settle_index first replays every settlement after it, then streams new events.
    if (settleIndex > 0) {
      const backlog = [...this.node.invoices.values()]
        .filter((i) => i.settleIndex > settleIndex)
        .sort((a, b) => a.settleIndex - b.settleIndex);
      for (const invoice of backlog) res.write(`${JSON.stringify({ result: lndInvoice(invoice) })}\n`);
    }
    const unwatch = this.node.watchInvoices((invoice) => {
      res.write(`${JSON.stringify({ result: lndInvoice(invoice) })}\n`);
    });
    res.on('close', () => {
      unwatch();
      this.subscriptions--;
      this.open.delete(res);
    });
  }

  private send(res: ServerResponse, body: Record<string, unknown>): void {
    if (this.node.stallPayments) {
      this.open.add(res);
      return;
    }
    const request = typeof body.payment_request === 'string' ? body.payment_request : '';
    const feeLimitMsat = BigInt(typeof body.fee_limit_sat === 'string' ? body.fee_limit_sat : '0') * 1000n;
    const decoded = decodeBolt11(request);
    const existing = decoded ? this.node.payments.get(decoded.paymentHash) : undefined;
    const started = this.node.startPayment(request, feeLimitMsat);
    if (started === 'invalid') {
      json(res, 500, { code: 2, message: 'invalid payment request' });
      return;
    }
    if (started === 'already') {
      const message =
        existing?.status === 'SUCCEEDED' ? 'invoice is already paid' : 'payment is in transition';
      json(res, 200, { error: { code: 6, message, details: [] } });
      return;
    }
    this.streamPayment(res, started, body.no_inflight_updates === true);
  }

  private track(res: ServerResponse, hashBase64Url: string, url: URL): void {
    const hash = Buffer.from(hashBase64Url, 'base64url').toString('hex');
    const payment = this.node.payments.get(hash);
    if (!payment) {
      json(res, 404, { error: { code: 5, message: "payment isn't initiated", details: [] } });
      return;
    }
    this.streamPayment(res, payment, url.searchParams.get('no_inflight_updates') === 'true');
  }

  /** A payment's updates as a stream; it ends with the final state. */
  private streamPayment(res: ServerResponse, payment: SimPayment, noInflightUpdates: boolean): void {
    res.writeHead(200, { 'content-type': 'application/json' });
    const write = (p: SimPayment) => res.write(`${JSON.stringify({ result: lndPayment(p) })}\n`);
    if (payment.status !== 'IN_FLIGHT') {
      write(payment);
      res.end();
      return;
    }
    if (!noInflightUpdates) write(payment);
    this.open.add(res);
    const unwatch = this.node.watchPayments((p) => {
      if (p.paymentHash !== payment.paymentHash) return;
      write(p);
      res.end();
    });
    res.on('close', () => {
      unwatch();
      this.open.delete(res);
    });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function lndInvoice(i: SimInvoice): Record<string, unknown> {
  return {
    memo: i.memo,
    r_preimage: Buffer.from(i.preimage, 'hex').toString('base64'),
    r_hash: Buffer.from(i.paymentHash, 'hex').toString('base64'),
    value: String(i.amountMsat / 1000n),
    value_msat: String(i.amountMsat),
    settled: i.state === 'SETTLED',
    creation_date: String(i.createdAt),
    settle_date: String(i.settledAt),
    payment_request: i.bolt11,
    expiry: String(i.expirySeconds),
    add_index: String(i.addIndex),
    settle_index: String(i.settleIndex),
    amt_paid_sat: i.state === 'SETTLED' ? String(i.amountMsat / 1000n) : '0',
    amt_paid_msat: i.state === 'SETTLED' ? String(i.amountMsat) : '0',
    state: i.state,
  };
}

function lndPayment(p: SimPayment): Record<string, unknown> {
  return {
    payment_hash: p.paymentHash,
    value: String(p.amountMsat / 1000n),
    creation_date: String(p.createdAt),
    fee: String(p.feeMsat / 1000n),
    payment_preimage: p.status === 'SUCCEEDED' ? p.preimage : '0'.repeat(64),
    value_sat: String(p.amountMsat / 1000n),
    value_msat: String(p.amountMsat),
    payment_request: p.bolt11,
    status: p.status,
    fee_sat: String(p.feeMsat / 1000n),
    fee_msat: String(p.feeMsat),
    creation_time_ns: String(p.createdAt * 1e9),
    htlcs: [],
    payment_index: '1',
    failure_reason: p.status === 'FAILED' ? p.failureReason : 'FAILURE_REASON_NONE',
  };
}
