import { randomBytes } from 'node:crypto';
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
import { asRecord, type RestAnswer, RestClient } from '../rest-client.js';

export interface ClnBackendOptions {
  /** clnrest's URL, e.g. https://127.0.0.1:3010 */
  url: string;
  /** A rune with the rights for invoice, listinvoices, waitanyinvoice, xpay and listpays. */
  rune: string;
  /** clnrest's certificate (PEM), pinned when given; needed for its self-signed certificate. */
  tlsCertPem?: string;
  /** Where waitanyinvoice resumes (`lastpay_index`) after a restart. */
  cursor: CursorFile;
  /** Lifetime of created invoices in seconds (default 3600). */
  expirySeconds?: number;
  /** How long payInvoice waits for xpay to end before answering 'pending' (default 30 s). */
  payWaitMs?: number;
  /** Seconds one waitanyinvoice call waits for a payment before it is asked again (default 60). */
  waitSeconds?: number;
  /** Delay before asking again after an error (default 2 s, doubling to 60 s). */
  reconnectMs?: number;
  now?: () => number;
}

/** xpay/pay error codes that mean an attempt for this hash exists already (CLN's JSON-RPC errors). */
const ALREADY_CODES = new Set([200, 201, 219]);
/** xpay/pay error codes after which nothing was or will be paid (no route, rejected, expired…). */
const DEFINITE_FAILURE_CODES = new Set([203, 205, 206, 207, 212]);
/** waitanyinvoice's "timed out" error. */
const WAIT_TIMEOUT_CODE = 904;

/**
 * Core Lightning through clnrest (JSON-RPC methods as POST /v1/<method>, authenticated by a
 * `Rune` header). Incoming payments come from `waitanyinvoice`, resumed from the persisted
 * `pay_index`; payments go through `xpay` and are recovered with `listpays`. Amounts are msat.
 */
export class ClnBackend implements LightningBackend {
  readonly id = 'cln';
  readonly isTestBackend = false;
  private readonly client: RestClient;
  private readonly hub: SettlementHub;
  private readonly now: () => number;

  constructor(private readonly options: ClnBackendOptions) {
    this.client = new RestClient({
      url: options.url,
      headers: { Rune: options.rune },
      ...(options.tlsCertPem ? { tlsCertPem: options.tlsCertPem } : {}),
    });
    this.hub = new SettlementHub((signal) => void this.followInvoices(signal));
    this.now = options.now ?? Date.now;
  }

  async createInvoice(amount: Amount, memo: string): Promise<CreatedInvoice> {
    checkInvoiceRequest(amount, memo);
    const answer = await unavailableOnError(
      this.call('invoice', {
        amount_msat:
          Number(amount.value * 1000n) <= Number.MAX_SAFE_INTEGER
            ? Number(amount.value * 1000n)
            : `${amount.value * 1000n}msat`,
        // Labels are unique per node; the mint keeps its quotes by payment hash, so any unique label does.
        label: `alacarte-${randomBytes(16).toString('hex')}`,
        description: memo,
        expiry: this.options.expirySeconds ?? 3600,
      }),
    );
    const body = asRecord(answer.body);
    const bolt11 = body.bolt11;
    const decoded = typeof bolt11 === 'string' ? decodeBolt11(bolt11) : undefined;
    if (!ok(answer) || !decoded || typeof bolt11 !== 'string' || decoded.paymentHash !== body.payment_hash) {
      throw new AlacarteError(
        'mint_unavailable',
        `CLN did not create the invoice: ${clnMessage(answer.body)}`,
      );
    }
    return { bolt11, paymentHash: decoded.paymentHash, expiresAt: decoded.expiresAt };
  }

  async invoiceState(paymentHash: string): Promise<InvoiceState> {
    if (!/^[0-9a-f]{64}$/.test(paymentHash)) return 'expired';
    const answer = await unavailableOnError(this.call('listinvoices', { payment_hash: paymentHash }));
    if (!ok(answer))
      throw new AlacarteError('mint_unavailable', `CLN listinvoices failed: ${clnMessage(answer.body)}`);
    const invoices = asRecord(answer.body).invoices;
    const invoice = asRecord(Array.isArray(invoices) ? invoices[0] : undefined);
    if (invoice.status === 'paid') return 'paid';
    if (invoice.status === 'unpaid') return 'unpaid';
    return 'expired';
  }

  onSettlement(listener: SettlementListener): () => void {
    return this.hub.subscribe(listener);
  }

  async payInvoice(bolt11: string, maxFee: Amount): Promise<PaymentOutcome> {
    const checked = checkPayable(bolt11, this.now());
    if ('failed' in checked) return checked.failed;
    const paymentHash = checked.decoded.paymentHash;
    const earlier = await this.paymentState(paymentHash);
    if (earlier.state !== 'failed') return earlier;
    let answer: RestAnswer;
    try {
      answer = await this.call(
        'xpay',
        { invstring: bolt11, maxfee: Number(maxFee.value * 1000n) },
        this.options.payWaitMs ?? 30_000,
      );
    } catch {
      // Sent or not, xpay may go on: only listpays can tell later.
      return { state: 'pending' };
    }
    const body = asRecord(answer.body);
    if (ok(answer) && typeof body.payment_preimage === 'string') {
      const sent = jsonInt(body.amount_sent_msat) ?? 0n;
      const amount = jsonInt(body.amount_msat) ?? sent;
      return { state: 'paid', preimage: body.payment_preimage, feePaid: feeFromMsat(sent - amount) };
    }
    const code = typeof body.code === 'number' ? body.code : undefined;
    // Whatever the error, the node's own record of this hash decides first ("already paid" included).
    const recorded = await this.paymentState(paymentHash);
    if (recorded.state !== 'failed') return recorded;
    if (code !== undefined && ALREADY_CODES.has(code)) return { state: 'pending' };
    if (code !== undefined && DEFINITE_FAILURE_CODES.has(code)) {
      return { state: 'failed', reason: `xpay ${code}: ${clnMessage(body)}` };
    }
    return { state: 'pending' };
  }

  async paymentState(paymentHash: string): Promise<PaymentOutcome> {
    if (!/^[0-9a-f]{64}$/.test(paymentHash)) return { state: 'failed', reason: 'not a payment hash' };
    let answer: RestAnswer;
    try {
      answer = await this.call('listpays', { payment_hash: paymentHash }, 10_000);
    } catch {
      return { state: 'pending' };
    }
    if (!ok(answer)) return { state: 'pending' };
    const pays = asRecord(answer.body).pays;
    const list = (Array.isArray(pays) ? pays : []).map(asRecord);
    const complete = list.find((p) => p.status === 'complete' && typeof p.preimage === 'string');
    if (complete) {
      const sent = jsonInt(complete.amount_sent_msat) ?? 0n;
      const amount = jsonInt(complete.amount_msat) ?? sent;
      return { state: 'paid', preimage: String(complete.preimage), feePaid: feeFromMsat(sent - amount) };
    }
    if (list.some((p) => p.status !== 'failed')) return { state: 'pending' };
    return {
      state: 'failed',
      reason: list.length === 0 ? 'no payment of this hash' : 'every attempt failed',
    };
  }

  /** Closes connections (the subscription ends with its last listener). */
  close(): void {
    this.client.close();
  }

  private call(method: string, params: Record<string, unknown>, timeoutMs?: number, signal?: AbortSignal) {
    return this.client.request('POST', `/v1/${method}`, params, timeoutMs, signal);
  }

  /** waitanyinvoice in a loop from the saved pay_index, until `signal`. */
  private async followInvoices(signal: AbortSignal): Promise<void> {
    const waitSeconds = this.options.waitSeconds ?? 60;
    const firstDelay = this.options.reconnectMs ?? 2_000;
    let delay = firstDelay;
    while (!signal.aborted) {
      try {
        const answer = await this.call(
          'waitanyinvoice',
          { lastpay_index: Number(this.options.cursor.get()), timeout: waitSeconds },
          (waitSeconds + 10) * 1000,
          signal,
        );
        const body = asRecord(answer.body);
        const payIndex = jsonInt(body.pay_index);
        if (ok(answer) && payIndex !== undefined && typeof body.payment_hash === 'string') {
          if (body.status === 'paid') this.hub.emit(body.payment_hash);
          this.options.cursor.advance(payIndex);
          delay = firstDelay;
          continue;
        }
        if (body.code === WAIT_TIMEOUT_CODE) continue;
      } catch {
        // Unreachable or aborted: wait below, then ask again from the saved pay_index.
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 60_000);
    }
  }
}

/** clnrest answers 201 (or 200) with the result, and an error status with `{code, message}`. */
function ok(answer: RestAnswer): boolean {
  return (answer.status === 200 || answer.status === 201) && asRecord(answer.body).code === undefined;
}

function clnMessage(body: unknown): string {
  const message = asRecord(body).message;
  return typeof message === 'string' ? message.slice(0, 200) : 'no answer';
}
