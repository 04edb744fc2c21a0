import { createHash, randomBytes } from 'node:crypto';
import bolt11 from 'bolt11';
import { bolt11NetworkParams, decodeBolt11 } from '../../../../src/lightning/bolt11.js';

/** An invoice of the simulated node. */
export interface SimInvoice {
  paymentHash: string;
  preimage: string;
  bolt11: string;
  amountMsat: bigint;
  memo: string;
  label: string;
  createdAt: number;
  expirySeconds: number;
  state: 'OPEN' | 'SETTLED' | 'CANCELED';
  addIndex: number;
  /** 0 until settled; LND's settle_index and CLN's pay_index. */
  settleIndex: number;
  settledAt: number;
}

/** An outgoing payment of the simulated node. */
export interface SimPayment {
  paymentHash: string;
  bolt11: string;
  amountMsat: bigint;
  status: 'IN_FLIGHT' | 'SUCCEEDED' | 'FAILED';
  preimage: string;
  feeMsat: bigint;
  failureReason: string;
  createdAt: number;
}

/**
 * The Lightning node behind the simulated REST servers (LND, CLN): real signed regtest invoices,
 * settlement counters, outgoing payments to "remote" invoices whose preimages it knows, and hooks
 * for tests: pay an invoice from outside, hold a payment in flight, stall the node's answers.
 */
export class SimulatedNode {
  readonly invoices = new Map<string, SimInvoice>();
  readonly payments = new Map<string, SimPayment>();
  /** Invoices of other nodes this one can pay: payment hash → preimage. */
  private readonly remote = new Map<string, string>();
  private readonly nodeKey = randomBytes(32);
  private addIndex = 0;
  private settleIndex = 0;
  private readonly invoiceWatchers = new Set<(invoice: SimInvoice) => void>();
  private readonly paymentWatchers = new Set<(payment: SimPayment) => void>();
  /** While true, new payments stay IN_FLIGHT until `resolvePayment`. */
  holdPayments = false;
  /** While true, payment requests get no answer at all (the node hangs). */
  stallPayments = false;
  /** How many times each hash was really paid (a correct client never makes this exceed 1). */
  readonly timesPaid = new Map<string, number>();
  /** Fee charged per payment, in msat. */
  feeMsat = 1000n;

  createInvoice(amountMsat: bigint, memo: string, expirySeconds: number, label = ''): SimInvoice {
    const preimage = randomBytes(32);
    const paymentHash = createHash('sha256').update(preimage).digest('hex');
    const createdAt = Math.floor(Date.now() / 1000);
    const encoded = bolt11.sign(
      bolt11.encode({
        network: bolt11NetworkParams('bcrt'),
        millisatoshis: amountMsat.toString(),
        timestamp: createdAt,
        tags: [
          { tagName: 'payment_hash', data: paymentHash },
          { tagName: 'payment_secret', data: randomBytes(32).toString('hex') },
          { tagName: 'description', data: memo },
          { tagName: 'expire_time', data: expirySeconds },
        ],
      }),
      this.nodeKey,
    );
    const invoice: SimInvoice = {
      paymentHash,
      preimage: preimage.toString('hex'),
      bolt11: encoded.paymentRequest ?? '',
      amountMsat,
      memo,
      label,
      createdAt,
      expirySeconds,
      state: 'OPEN',
      addIndex: ++this.addIndex,
      settleIndex: 0,
      settledAt: 0,
    };
    this.invoices.set(paymentHash, invoice);
    for (const watch of this.invoiceWatchers) watch(invoice);
    return invoice;
  }

  /** An outside payer pays one of this node's invoices. */
  payIncoming(bolt11: string): void {
    const hash = decodeBolt11(bolt11)?.paymentHash ?? '';
    const invoice = this.invoices.get(hash);
    if (invoice?.state !== 'OPEN') throw new Error('simulated node: no open invoice to pay');
    invoice.state = 'SETTLED';
    invoice.settleIndex = ++this.settleIndex;
    invoice.settledAt = Math.floor(Date.now() / 1000);
    for (const watch of this.invoiceWatchers) watch(invoice);
  }

  /** An invoice of another node that this one can pay (it will learn the preimage). */
  remoteInvoice(amountMsat: bigint): string {
    const preimage = randomBytes(32);
    const paymentHash = createHash('sha256').update(preimage).digest('hex');
    const signed = bolt11.sign(
      bolt11.encode({
        network: bolt11NetworkParams('bcrt'),
        millisatoshis: amountMsat.toString(),
        timestamp: Math.floor(Date.now() / 1000),
        tags: [
          { tagName: 'payment_hash', data: paymentHash },
          { tagName: 'payment_secret', data: randomBytes(32).toString('hex') },
          { tagName: 'description', data: 'remote' },
          { tagName: 'expire_time', data: 3600 },
        ],
      }),
      randomBytes(32),
    );
    this.remote.set(paymentHash, preimage.toString('hex'));
    return signed.paymentRequest ?? '';
  }

  /**
   * Starts paying `bolt11` (already checked by the caller's API rules). Returns the payment, or
   * 'already' when this hash is in flight or paid (each API words that its own way).
   */
  startPayment(bolt11: string, maxFeeMsat: bigint): SimPayment | 'already' | 'invalid' {
    const decoded = decodeBolt11(bolt11);
    if (!decoded || decoded.amountMsat === undefined) return 'invalid';
    const existing = this.payments.get(decoded.paymentHash);
    if (existing && existing.status !== 'FAILED') return 'already';
    const payment: SimPayment = {
      paymentHash: decoded.paymentHash,
      bolt11,
      amountMsat: decoded.amountMsat,
      status: 'IN_FLIGHT',
      preimage: '',
      feeMsat: 0n,
      failureReason: '',
      createdAt: Math.floor(Date.now() / 1000),
    };
    this.payments.set(payment.paymentHash, payment);
    if (!this.holdPayments) this.finish(payment, maxFeeMsat);
    return payment;
  }

  /** Ends a held payment: as the route would have ended it, or failed. */
  resolvePayment(paymentHash: string, result: 'route' | 'fail'): void {
    const payment = this.payments.get(paymentHash);
    if (payment?.status !== 'IN_FLIGHT') throw new Error('simulated node: no payment in flight');
    if (result === 'fail') this.fail(payment, 'FAILURE_REASON_NO_ROUTE');
    else this.finish(payment, this.feeMsat);
  }

  watchInvoices(watch: (invoice: SimInvoice) => void): () => void {
    this.invoiceWatchers.add(watch);
    return () => this.invoiceWatchers.delete(watch);
  }

  watchPayments(watch: (payment: SimPayment) => void): () => void {
    this.paymentWatchers.add(watch);
    return () => this.paymentWatchers.delete(watch);
  }

  private finish(payment: SimPayment, maxFeeMsat: bigint): void {
    const preimage = this.remote.get(payment.paymentHash);
    if (preimage === undefined) {
      this.fail(payment, 'FAILURE_REASON_INCORRECT_PAYMENT_DETAILS');
      return;
    }
    if (this.feeMsat > maxFeeMsat) {
      this.fail(payment, 'FAILURE_REASON_NO_ROUTE');
      return;
    }
    this.timesPaid.set(payment.paymentHash, (this.timesPaid.get(payment.paymentHash) ?? 0) + 1);
    payment.status = 'SUCCEEDED';
    payment.preimage = preimage;
    payment.feeMsat = this.feeMsat;
    for (const watch of this.paymentWatchers) watch(payment);
  }

  private fail(payment: SimPayment, reason: string): void {
    payment.status = 'FAILED';
    payment.failureReason = reason;
    for (const watch of this.paymentWatchers) watch(payment);
  }
}
