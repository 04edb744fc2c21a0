import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { decodeBolt11 } from '../../../../src/lightning/bolt11.js';
import { type SimInvoice, type SimPayment, SimulatedNode } from './simulated-node.js';

/**
 * A SIMULATED Core Lightning `clnrest`, written from CLN's published JSON-RPC reference: each method
 * is POST /v1/<method> with its parameters as a JSON object and a `Rune` header; success answers 201
 * with the result, an error 500 with `{code, message}`. Methods: invoice, listinvoices,
 * waitanyinvoice (lastpay_index, timeout → 904), xpay (invstring, maxfee; blocks until the payment
 * ends; 219 when already paid) and listpays. HTTPS with its own self-signed certificate.
 */
export class SimulatedCln {
  readonly node = new SimulatedNode();
  private server: Server | undefined;
  private readonly open = new Set<ServerResponse>();

  constructor(
    private readonly tls: { cert: string; key: string },
    readonly rune: string,
  ) {}

  async start(): Promise<string> {
    this.server = createServer({ cert: this.tls.cert, key: this.tls.key }, (req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const res of this.open) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.rune !== this.rune) {
      reply(res, 401, { code: 1501, message: 'Not authorized: Not derived from master' });
      return;
    }
    let text = '';
    for await (const chunk of req) text += chunk;
    let params: Record<string, unknown>;
    try {
      params = JSON.parse(text || '{}') as Record<string, unknown>;
    } catch {
      reply(res, 500, { code: -32602, message: 'invalid JSON' });
      return;
    }
    const method = new URL(req.url ?? '/', 'https://cln').pathname.replace(/^\/v1\//, '');
    if (req.method !== 'POST') {
      reply(res, 405, { code: -32601, message: 'POST only' });
      return;
    }
    switch (method) {
      case 'invoice':
        return this.invoice(res, params);
      case 'listinvoices':
        return this.listinvoices(res, params);
      case 'waitanyinvoice':
        return this.waitanyinvoice(res, params);
      case 'xpay':
        return this.xpay(res, params);
      case 'listpays':
        return this.listpays(res, params);
      default:
        reply(res, 500, { code: -32601, message: `Unknown command '${method}'` });
    }
  }

  private invoice(res: ServerResponse, params: Record<string, unknown>): void {
    const label = String(params.label ?? '');
    if ([...this.node.invoices.values()].some((i) => i.label === label)) {
      reply(res, 500, { code: 900, message: 'Duplicate label' });
      return;
    }
    const invoice = this.node.createInvoice(
      BigInt(Number(params.amount_msat)),
      String(params.description ?? ''),
      Number(params.expiry ?? 604_800),
      label,
    );
    reply(res, 201, {
      payment_hash: invoice.paymentHash,
      expires_at: invoice.createdAt + invoice.expirySeconds,
      bolt11: invoice.bolt11,
      payment_secret: '00'.repeat(32),
      created_index: invoice.addIndex,
    });
  }

  private listinvoices(res: ServerResponse, params: Record<string, unknown>): void {
    const invoice = this.node.invoices.get(String(params.payment_hash ?? ''));
    reply(res, 201, { invoices: invoice ? [clnInvoice(invoice)] : [] });
  }

  private waitanyinvoice(res: ServerResponse, params: Record<string, unknown>): void {
    const last = Number(params.lastpay_index ?? 0);
    const next = () =>
      [...this.node.invoices.values()]
        .filter((i) => i.settleIndex > last)
        .sort((a, b) => a.settleIndex - b.settleIndex)[0];
    const ready = next();
    if (ready) {
      reply(res, 201, clnInvoice(ready));
      return;
    }
    this.open.add(res);
    const timer = setTimeout(
      () => reply(res, 500, { code: 904, message: 'Timed out' }),
      Number(params.timeout ?? 3600) * 1000,
    );
    const unwatch = this.node.watchInvoices(() => {
      const found = next();
      if (found) reply(res, 201, clnInvoice(found));
    });
    res.on('close', () => {
      clearTimeout(timer);
      unwatch();
      this.open.delete(res);
    });
  }

  private xpay(res: ServerResponse, params: Record<string, unknown>): void {
    if (this.node.stallPayments) {
      this.open.add(res);
      return;
    }
    const invstring = String(params.invstring ?? '');
    const decoded = decodeBolt11(invstring);
    const existing = decoded ? this.node.payments.get(decoded.paymentHash) : undefined;
    const started = this.node.startPayment(invstring, BigInt(Number(params.maxfee ?? 5000)));
    if (started === 'invalid') {
      reply(res, 500, { code: -32602, message: 'invstring: Unparsable invoice' });
      return;
    }
    if (started === 'already') {
      const paid = existing?.status === 'SUCCEEDED';
      reply(res, 500, { code: paid ? 219 : 200, message: paid ? 'Already paid' : 'Already in progress' });
      return;
    }
    const answer = (p: SimPayment) => {
      if (p.status === 'SUCCEEDED') {
        reply(res, 201, {
          payment_preimage: p.preimage,
          failed_parts: 0,
          successful_parts: 1,
          amount_msat: Number(p.amountMsat),
          amount_sent_msat: Number(p.amountMsat + p.feeMsat),
        });
      } else {
        const noRoute = p.failureReason === 'FAILURE_REASON_NO_ROUTE';
        reply(res, 500, {
          code: noRoute ? 205 : 203,
          message: noRoute ? 'Failed: could not route' : 'Destination said it does not know invoice',
        });
      }
    };
    if (started.status !== 'IN_FLIGHT') {
      answer(started);
      return;
    }
    this.open.add(res);
    const unwatch = this.node.watchPayments((p) => {
      if (p.paymentHash === started.paymentHash) answer(p);
    });
    res.on('close', () => {
      unwatch();
      this.open.delete(res);
    });
  }

  private listpays(res: ServerResponse, params: Record<string, unknown>): void {
    const payment = this.node.payments.get(String(params.payment_hash ?? ''));
    reply(res, 201, { pays: payment ? [clnPay(payment)] : [] });
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function clnInvoice(i: SimInvoice): Record<string, unknown> {
  const expired = i.state === 'OPEN' && Date.now() / 1000 >= i.createdAt + i.expirySeconds;
  return {
    label: i.label,
    bolt11: i.bolt11,
    payment_hash: i.paymentHash,
    amount_msat: Number(i.amountMsat),
    status: i.state === 'SETTLED' ? 'paid' : expired || i.state === 'CANCELED' ? 'expired' : 'unpaid',
    description: i.memo,
    expires_at: i.createdAt + i.expirySeconds,
    created_index: i.addIndex,
    ...(i.state === 'SETTLED'
      ? {
          pay_index: i.settleIndex,
          amount_received_msat: Number(i.amountMsat),
          paid_at: i.settledAt,
          payment_preimage: i.preimage,
        }
      : {}),
  };
}

function clnPay(p: SimPayment): Record<string, unknown> {
  const status = p.status === 'SUCCEEDED' ? 'complete' : p.status === 'FAILED' ? 'failed' : 'pending';
  return {
    bolt11: p.bolt11,
    payment_hash: p.paymentHash,
    status,
    created_at: p.createdAt,
    amount_msat: Number(p.amountMsat),
    amount_sent_msat: Number(p.amountMsat + p.feeMsat),
    ...(status === 'complete' ? { preimage: p.preimage } : {}),
  };
}
