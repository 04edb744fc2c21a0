import type { Nip47Transaction, NWCClient } from '@getalby/sdk';
import WebSocket from 'ws';
import type { Amount } from '../../core/amount.js';
import { AlacarteError } from '../../core/errors.js';
import { checkInvoiceRequest, checkPayable, feeFromMsat, SettlementHub, sleep } from '../backend-common.js';
import { decodeBolt11 } from '../bolt11.js';
import type { CursorFile } from '../cursor-file.js';
import type {
  CreatedInvoice,
  InvoiceState,
  LightningBackend,
  PaymentOutcome,
  SettlementListener,
} from '../lightning-backend.js';

export interface NwcBackendOptions {
  /** The wallet's connection string, nostr+walletconnect://<wallet pubkey>?relay=…&secret=… (a secret). */
  url: string;
  /** The `settled_at` (seconds) of the last incoming payment heard, to catch up after a restart. */
  cursor: CursorFile;
  /** Lifetime of created invoices in seconds (default 3600). */
  expirySeconds?: number;
  /** How long payInvoice waits for the wallet's answer before answering 'pending' (default 30 s). */
  payWaitMs?: number;
  /**
   * While listening, how often incoming payments are also listed (list_transactions), since relays
   * drop notifications sent while the connection is down (default 60 s).
   */
  catchUpMs?: number;
  /**
   * A payment the wallet does not know (lookup NOT_FOUND) within this long after this process asked
   * for it counts as pending, not failed: the wallet may not have recorded it yet (default 120 s).
   */
  unknownGraceMs?: number;
  now?: () => number;
}

/** NIP-47 error codes with which a wallet refuses before paying anything. */
const REFUSED_CODES = new Set([
  'INSUFFICIENT_BALANCE',
  'QUOTA_EXCEEDED',
  'RESTRICTED',
  'UNAUTHORIZED',
  'RATE_LIMITED',
  'NOT_IMPLEMENTED',
]);

let sdk: Promise<typeof import('@getalby/sdk')> | undefined;

/**
 * The SDK's bundled nostr-tools reads the global WebSocket when its module loads, and Node 20 has
 * none: provide `ws` first, then load the SDK.
 */
export function loadNwcSdk(): Promise<typeof import('@getalby/sdk')> {
  if (!sdk) {
    const global = globalThis as { WebSocket?: unknown };
    global.WebSocket ??= WebSocket;
    sdk = import('@getalby/sdk');
  }
  return sdk;
}

/**
 * A Lightning wallet over Nostr Wallet Connect (NIP-47) with @getalby/sdk's NWCClient: make_invoice,
 * lookup_invoice, pay_invoice, list_transactions and `payment_received` notifications; amounts in
 * msat; NIP-44 encryption when the wallet's info event offers it (the SDK chooses). A pay_invoice
 * that gets no answer in time is pending and recovered with lookup_invoice, never failed.
 */
export class NwcBackend implements LightningBackend {
  readonly id = 'nwc';
  readonly isTestBackend = false;
  private client: Promise<NWCClient> | undefined;
  private readonly hub: SettlementHub;
  private readonly now: () => number;
  /** When this process last asked to pay each hash (ms), for the NOT_FOUND grace. */
  private readonly attempts = new Map<string, number>();

  constructor(private readonly options: NwcBackendOptions) {
    if (!options.url.startsWith('nostr+walletconnect:'))
      throw new Error('the NWC URL must be nostr+walletconnect://…');
    this.hub = new SettlementHub((signal) => void this.followPayments(signal));
    this.now = options.now ?? Date.now;
  }

  async createInvoice(amount: Amount, memo: string): Promise<CreatedInvoice> {
    checkInvoiceRequest(amount, memo);
    let tx: Nip47Transaction;
    try {
      tx = await (await this.nwc()).makeInvoice({
        amount: Number(amount.value * 1000n),
        description: memo,
        expiry: this.options.expirySeconds ?? 3600,
      });
    } catch (err) {
      throw unavailable('make_invoice', err);
    }
    const decoded = decodeBolt11(tx.invoice);
    if (!decoded || decoded.paymentHash !== tx.payment_hash || decoded.amountMsat !== amount.value * 1000n) {
      throw new AlacarteError(
        'mint_unavailable',
        'the NWC wallet answered make_invoice with another invoice',
      );
    }
    return { bolt11: tx.invoice, paymentHash: decoded.paymentHash, expiresAt: decoded.expiresAt };
  }

  async invoiceState(paymentHash: string): Promise<InvoiceState> {
    if (!/^[0-9a-f]{64}$/.test(paymentHash)) return 'expired';
    let tx: Nip47Transaction;
    try {
      tx = await (await this.nwc()).lookupInvoice({ payment_hash: paymentHash });
    } catch (err) {
      if (errorCode(err) === 'NOT_FOUND') return 'expired';
      throw unavailable('lookup_invoice', err);
    }
    if (tx.type !== 'incoming') return 'expired';
    if (tx.state === 'settled') return 'paid';
    if (tx.state === 'failed') return 'expired';
    if (tx.expires_at && tx.expires_at * 1000 <= this.now()) return 'expired';
    return 'unpaid';
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
    // NIP-47 pay_invoice has no fee limit: the wallet's own budget applies. The fee is checked after.
    void maxFee;
    this.attempts.set(paymentHash, this.now());
    let client: NWCClient;
    try {
      client = await this.nwc();
    } catch {
      return { state: 'pending' };
    }
    const paying = client.payInvoice({ invoice: bolt11 });
    const answer = await Promise.race([
      paying.then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      ),
      sleep(this.options.payWaitMs ?? 30_000).then(() => ({ timeout: true as const })),
    ]);
    if ('result' in answer && answer.result.preimage) {
      return {
        state: 'paid',
        preimage: answer.result.preimage,
        feePaid: feeFromMsat(BigInt(answer.result.fees_paid ?? 0)),
      };
    }
    // Time-outs and errors: what the wallet recorded decides; without a record only a refusal is final.
    const recorded = await this.paymentState(paymentHash);
    if (recorded.state !== 'failed' || 'timeout' in answer)
      return recorded.state === 'failed' ? { state: 'pending' } : recorded;
    const code = 'error' in answer ? errorCode(answer.error) : undefined;
    if (code && REFUSED_CODES.has(code)) return { state: 'failed', reason: `wallet refused: ${code}` };
    if (code === 'PAYMENT_FAILED') return { state: 'failed', reason: 'wallet: payment failed' };
    return { state: 'pending' };
  }

  async paymentState(paymentHash: string): Promise<PaymentOutcome> {
    if (!/^[0-9a-f]{64}$/.test(paymentHash)) return { state: 'failed', reason: 'not a payment hash' };
    let tx: Nip47Transaction;
    try {
      tx = await (await this.nwc()).lookupInvoice({ payment_hash: paymentHash });
    } catch (err) {
      if (errorCode(err) !== 'NOT_FOUND') return { state: 'pending' };
      const askedAt = this.attempts.get(paymentHash);
      if (askedAt !== undefined && this.now() - askedAt < (this.options.unknownGraceMs ?? 120_000)) {
        return { state: 'pending' };
      }
      return { state: 'failed', reason: 'no payment of this hash' };
    }
    if (tx.type !== 'outgoing') return { state: 'failed', reason: 'no payment of this hash' };
    if (tx.state === 'settled' && /^[0-9a-f]{64}$/.test(tx.preimage ?? '')) {
      return { state: 'paid', preimage: tx.preimage, feePaid: feeFromMsat(BigInt(tx.fees_paid ?? 0)) };
    }
    if (tx.state === 'failed') return { state: 'failed', reason: 'wallet: payment failed' };
    return { state: 'pending' };
  }

  /** Closes the relay connections. */
  async close(): Promise<void> {
    if (this.client) (await this.client.catch(() => undefined))?.close();
  }

  private nwc(): Promise<NWCClient> {
    if (!this.client) {
      this.client = loadNwcSdk().then((m) => new m.NWCClient({ nostrWalletConnectUrl: this.options.url }));
      this.client.catch(() => {
        this.client = undefined;
      });
    }
    return this.client;
  }

  /** Notifications while listening, plus a list_transactions catch-up from the cursor now and then. */
  private async followPayments(signal: AbortSignal): Promise<void> {
    let unsubscribe: (() => void) | undefined;
    try {
      const client = await this.nwc();
      unsubscribe = await client.subscribeNotifications(
        (n) => {
          if (n.notification_type === 'payment_received') this.heard(n.notification);
        },
        ['payment_received'],
      );
    } catch {
      // Catch-up below still finds incoming payments.
    }
    if (signal.aborted) unsubscribe?.();
    else signal.addEventListener('abort', () => unsubscribe?.(), { once: true });
    while (!signal.aborted) {
      await this.catchUp().catch(() => undefined);
      await sleep(this.options.catchUpMs ?? 60_000, signal);
    }
  }

  /** Incoming payments settled at or after the cursor (inclusive: listeners are idempotent). */
  private async catchUp(): Promise<void> {
    const client = await this.nwc();
    const from = Number(this.options.cursor.get());
    if (from === 0) return;
    for (let page = 0; page < 20; page++) {
      const { transactions } = await client.listTransactions({
        from,
        type: 'incoming',
        limit: 50,
        offset: page * 50,
      });
      for (const tx of transactions) this.heard(tx);
      if (transactions.length < 50) return;
    }
  }

  private heard(tx: Nip47Transaction): void {
    if (tx.type !== 'incoming' || tx.state !== 'settled' || !/^[0-9a-f]{64}$/.test(tx.payment_hash)) return;
    this.hub.emit(tx.payment_hash);
    if (Number.isSafeInteger(tx.settled_at) && tx.settled_at > 0)
      this.options.cursor.advance(BigInt(tx.settled_at));
  }
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function unavailable(method: string, err: unknown): AlacarteError {
  return new AlacarteError(
    'mint_unavailable',
    `NWC ${method} failed: ${errorCode(err) ?? (err as Error).message}`,
    {
      cause: err,
    },
  );
}
