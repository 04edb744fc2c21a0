import { Amount } from '../core/amount.js';
import { AlacarteError } from '../core/errors.js';
import { type DecodedBolt11, decodeBolt11 } from './bolt11.js';
import type { PaymentOutcome, SettlementListener } from './lightning-backend.js';

/** BOLT11 descriptions are at most 639 bytes (1023 five-bit words). */
export const MAX_MEMO_BYTES = 639;
/** What BOLT11 can express: 21 million BTC in sat. */
export const MAX_INVOICE_SAT = 2_100_000_000_000_000n;

/** The checks every backend makes before asking its node for an invoice; throws AlacarteError. */
export function checkInvoiceRequest(amount: Amount, memo: string): void {
  if (amount.unit !== 'sat')
    throw new AlacarteError('unit_mismatch', `invoices are in sat, not ${amount.unit}`);
  if (amount.isZero() || amount.value > MAX_INVOICE_SAT) {
    throw new AlacarteError('invalid_request', `invoice amount out of range: ${amount}`);
  }
  if (Buffer.byteLength(memo, 'utf8') > MAX_MEMO_BYTES) {
    throw new AlacarteError('invalid_request', `invoice description longer than ${MAX_MEMO_BYTES} bytes`);
  }
}

/**
 * The checks before paying: an invoice that cannot be decoded, carries no amount or has expired is
 * a definite failure (nothing was sent). Returns the decoded invoice, or the failed outcome.
 */
export function checkPayable(
  bolt11: string,
  nowMs: number,
): { decoded: DecodedBolt11 & { amountMsat: bigint } } | { failed: PaymentOutcome } {
  const decoded = decodeBolt11(bolt11);
  if (!decoded) return { failed: { state: 'failed', reason: 'invoice cannot be decoded' } };
  if (decoded.amountMsat === undefined)
    return { failed: { state: 'failed', reason: 'invoice has no amount' } };
  if (decoded.expiresAt.getTime() <= nowMs) return { failed: { state: 'failed', reason: 'invoice expired' } };
  return { decoded: decoded as DecodedBolt11 & { amountMsat: bigint } };
}

/** A fee in msat as the sat the mint books: rounded up, so the books never show less than was spent. */
export function feeFromMsat(msat: bigint): Amount {
  return Amount.of(msat <= 0n ? 0n : (msat + 999n) / 1000n, 'sat');
}

/** A non-negative integer from JSON that may be a number or a decimal string (int64s are strings). */
export function jsonInt(value: unknown): bigint | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'string' && /^[0-9]{1,20}$/.test(value)) return BigInt(value);
  return undefined;
}

/**
 * The listeners of `onSettlement`, and the one subscription loop that runs while there are any:
 * `start` is called for the first listener with a signal aborted when the last one leaves.
 */
export class SettlementHub {
  private readonly listeners = new Set<SettlementListener>();
  private controller: AbortController | undefined;

  constructor(private readonly start: (signal: AbortSignal) => void) {}

  subscribe(listener: SettlementListener): () => void {
    // A wrapper, so that one function subscribed twice is also heard twice and unsubscribed once each.
    const entry: SettlementListener = (hash) => listener(hash);
    this.listeners.add(entry);
    if (!this.controller) {
      this.controller = new AbortController();
      this.start(this.controller.signal);
    }
    return () => {
      this.listeners.delete(entry);
      if (this.listeners.size === 0 && this.controller) {
        this.controller.abort();
        this.controller = undefined;
      }
    };
  }

  /** Tells every listener; a throwing listener does not stop the others. */
  emit(paymentHash: string): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(paymentHash);
      } catch {
        // Listeners must not throw (port contract); one that does loses only its own notice.
      }
    }
  }
}

/** Waits `ms`, or less when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref?.();
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A node that cannot be reached is the mint's 503 (`mint_unavailable`), not an internal error. */
export async function unavailableOnError<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (err) {
    if (err instanceof AlacarteError) throw err;
    throw new AlacarteError('mint_unavailable', `Lightning node unreachable: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
