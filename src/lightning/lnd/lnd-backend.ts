import type { Amount } from '../../core/amount.js';
import { AlacarteError } from '../../core/errors.js';
import {
  checkInvoiceRequest,
  checkPayable,
  feeFromMsat,
  jsonInt,
  SettlementHub,
  sleep,
  unavailableOnError,
} from '../backend-common.js';
import { decodeBolt11 } from '../bolt11.js';
import type { CursorFile } from '../cursor-file.js';
import type {
  CreatedInvoice,
  InvoiceState,
  LightningBackend,
  PaymentOutcome,
  SettlementListener,
} from '../lightning-backend.js';
import { asRecord, RestClient } from '../rest-client.js';

export interface LndBackendOptions {
  /** LND's REST listener, e.g. https://127.0.0.1:8080 */
  url: string;
  /** The macaroon, hex-encoded (the file's bytes as hex); sent as Grpc-Metadata-macaroon. */
  macaroonHex: string;
  /** LND's tls.cert (PEM): the only certificate the connection accepts. */
  tlsCertPem: string;
  /** Where the invoice subscription resumes (`settle_index`) after a restart. */
  cursor: CursorFile;
  /** Lifetime of created invoices in seconds (default 3600). */
  expirySeconds?: number;
  /** LND's own time limit for one payment (`timeout_seconds`, default 60). */
  paymentTimeoutSeconds?: number;
  /** How long payInvoice waits for a final state before answering 'pending' (default 30 s). */
  payWaitMs?: number;
  /** Delay before resubscribing after the invoice stream broke (default 2 s, doubling to 60 s). */
  reconnectMs?: number;
  now?: () => number;
}

/** Payment failure reasons after which LND has definitely not paid, and will not (routerrpc.PaymentFailureReason). */
const DEFINITE_FAILURES = new Set([
  'FAILURE_REASON_TIMEOUT',
  'FAILURE_REASON_NO_ROUTE',
  'FAILURE_REASON_ERROR',
  'FAILURE_REASON_INCORRECT_PAYMENT_DETAILS',
  'FAILURE_REASON_INSUFFICIENT_BALANCE',
  'FAILURE_REASON_CANCELED',
]);

/**
 * LND through its REST interface (lnrpc + routerrpc over grpc-gateway): int64 fields are decimal
 * strings, bytes fields base64. Authenticated by macaroon, the connection pinned to the node's
 * tls.cert. Incoming payments come from the invoice subscription, resumed from the persisted
 * `settle_index`; payments go through routerrpc SendPaymentV2 and are recovered with TrackPaymentV2.
 * Only a FAILED payment with a definite reason is 'failed'; anything unclear is 'pending'.
 */
export class LndBackend implements LightningBackend {
  readonly id = 'lnd';
  readonly isTestBackend = false;
  private readonly client: RestClient;
  private readonly hub: SettlementHub;
  private readonly now: () => number;

  constructor(private readonly options: LndBackendOptions) {
    if (!/^([0-9a-f]{2})+$/i.test(options.macaroonHex)) throw new Error('the LND macaroon must be hex');
    this.client = new RestClient({
      url: options.url,
      headers: { 'Grpc-Metadata-macaroon': options.macaroonHex },
      tlsCertPem: options.tlsCertPem,
    });
    this.hub = new SettlementHub((signal) => void this.followInvoices(signal));
    this.now = options.now ?? Date.now;
  }

  async createInvoice(amount: Amount, memo: string): Promise<CreatedInvoice> {
    checkInvoiceRequest(amount, memo);
    const answer = await unavailableOnError(
      this.client.request('POST', '/v1/invoices', {
        value: amount.value.toString(),
        memo,
        expiry: String(this.options.expirySeconds ?? 3600),
      }),
    );
    const body = asRecord(answer.body);
    const bolt11 = body.payment_request;
    const decoded = typeof bolt11 === 'string' ? decodeBolt11(bolt11) : undefined;
    const rHash = typeof body.r_hash === 'string' ? Buffer.from(body.r_hash, 'base64').toString('hex') : '';
    if (answer.status !== 200 || !decoded || typeof bolt11 !== 'string' || decoded.paymentHash !== rHash) {
      throw new AlacarteError(
        'mint_unavailable',
        `LND did not create the invoice: ${lndMessage(answer.body)}`,
      );
    }
    return { bolt11, paymentHash: rHash, expiresAt: decoded.expiresAt };
  }

  async invoiceState(paymentHash: string): Promise<InvoiceState> {
    if (!/^[0-9a-f]{64}$/.test(paymentHash)) return 'expired';
    const answer = await unavailableOnError(this.client.request('GET', `/v1/invoice/${paymentHash}`));
    if (answer.status !== 200) {
      if (isNotFound(answer)) return 'expired';
      throw new AlacarteError('mint_unavailable', `LND invoice lookup failed: ${lndMessage(answer.body)}`);
    }
    const state = asRecord(answer.body).state;
    if (state === 'SETTLED') return 'paid';
    if (state === 'CANCELED') return 'expired';
    return 'unpaid';
  }

  onSettlement(listener: SettlementListener): () => void {
    return this.hub.subscribe(listener);
  }

  async payInvoice(bolt11: string, maxFee: Amount): Promise<PaymentOutcome> {
    const checked = checkPayable(bolt11, this.now());
    if ('failed' in checked) return checked.failed;
    const paymentHash = checked.decoded.paymentHash;
    // LND refuses a second payment of a hash itself; asking first keeps a retry after a crash cheap.
    const earlier = await this.paymentState(paymentHash);
    if (earlier.state !== 'failed') return earlier;
    const timeoutSeconds = this.options.paymentTimeoutSeconds ?? 60;
    let outcome: PaymentOutcome = { state: 'pending' };
    let alreadyKnown = false;
    try {
      await this.client.stream(
        'POST',
        '/v2/router/send',
        {
          payment_request: bolt11,
          fee_limit_sat: maxFee.value.toString(),
          timeout_seconds: timeoutSeconds,
          no_inflight_updates: true,
        },
        AbortSignal.timeout(this.options.payWaitMs ?? 30_000),
        (line) => {
          const error = asRecord(asRecord(line).error);
          if (typeof error.message === 'string') {
            alreadyKnown = /already paid|in transition|already exists/i.test(error.message);
            return true;
          }
          outcome = paymentOutcome(asRecord(asRecord(line).result));
          return outcome.state !== 'pending';
        },
      );
    } catch {
      // The request may or may not have reached LND: the payment is looked up, never sent again blindly.
      return { state: 'pending' };
    }
    if (alreadyKnown) return this.paymentState(paymentHash);
    return outcome;
  }

  async paymentState(paymentHash: string): Promise<PaymentOutcome> {
    if (!/^[0-9a-f]{64}$/.test(paymentHash)) return { state: 'failed', reason: 'not a payment hash' };
    const hash = Buffer.from(paymentHash, 'hex').toString('base64url');
    let outcome: PaymentOutcome = { state: 'pending' };
    let unknown = false;
    try {
      await this.client.stream(
        'GET',
        `/v2/router/track/${hash}`,
        undefined,
        AbortSignal.timeout(10_000),
        (line, status) => {
          const error = asRecord(asRecord(line).error);
          if (typeof error.message === 'string' || status !== 200) {
            unknown = isNotFound({ status, body: line });
            return true;
          }
          outcome = paymentOutcome(asRecord(asRecord(line).result));
          // The first update is the current state; a pending payment is asked about again later.
          return true;
        },
      );
    } catch {
      return { state: 'pending' };
    }
    if (unknown) return { state: 'failed', reason: 'no payment of this hash' };
    return outcome;
  }

  /** Stops the invoice subscription and closes connections. */
  close(): void {
    this.client.close();
  }

  /** The invoice subscription, resumed from the saved settle_index after every break, until `signal`. */
  private async followInvoices(signal: AbortSignal): Promise<void> {
    let delay = this.options.reconnectMs ?? 2_000;
    while (!signal.aborted) {
      try {
        const from = this.options.cursor.get();
        await this.client.stream(
          'GET',
          `/v1/invoices/subscribe?settle_index=${from}`,
          undefined,
          signal,
          (line) => {
            const invoice = asRecord(asRecord(line).result);
            const settleIndex = jsonInt(invoice.settle_index);
            if (
              invoice.state !== 'SETTLED' ||
              typeof invoice.r_hash !== 'string' ||
              settleIndex === undefined
            ) {
              return false;
            }
            delay = this.options.reconnectMs ?? 2_000;
            this.hub.emit(Buffer.from(invoice.r_hash, 'base64').toString('hex'));
            this.options.cursor.advance(settleIndex);
            return false;
          },
        );
      } catch {
        // Reconnect below; settlements meanwhile come back from the saved settle_index.
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 60_000);
    }
  }
}

/** A routerrpc.Payment as the port's outcome. */
function paymentOutcome(payment: Record<string, unknown>): PaymentOutcome {
  if (payment.status === 'SUCCEEDED' && typeof payment.payment_preimage === 'string') {
    const feeMsat = jsonInt(payment.fee_msat) ?? (jsonInt(payment.fee_sat) ?? 0n) * 1000n;
    return { state: 'paid', preimage: payment.payment_preimage, feePaid: feeFromMsat(feeMsat) };
  }
  if (payment.status === 'FAILED' && typeof payment.failure_reason === 'string') {
    if (DEFINITE_FAILURES.has(payment.failure_reason))
      return { state: 'failed', reason: payment.failure_reason };
  }
  return { state: 'pending' };
}

/** LND's "there is no such invoice / payment": grpc NOT_FOUND, or its messages for it. */
function isNotFound(answer: { status: number; body: unknown }): boolean {
  const error = asRecord(answer.body).error ? asRecord(asRecord(answer.body).error) : asRecord(answer.body);
  if (answer.status === 404 || error.code === 5) return true;
  return (
    typeof error.message === 'string' &&
    /unable to locate invoice|isn't initiated|not found/i.test(error.message)
  );
}

function lndMessage(body: unknown): string {
  const record = asRecord(body);
  const message = record.message ?? asRecord(record.error).message;
  return typeof message === 'string' ? message.slice(0, 200) : 'no answer';
}
