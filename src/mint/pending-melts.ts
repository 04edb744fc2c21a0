import { logRef } from '../log.js';
import type { MintLogger } from './mint-core.js';

export interface PendingMeltsOptions {
  /** first re-check after this many ms; each next one waits twice as long, up to `maxDelayMs` */
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** melts followed at once; more are left to wallet lookups (which ask Lightning too) */
  maxWatched?: number;
}

/**
 * Follows melts whose Lightning payment is in flight: re-asks the backend with exponential backoff
 * until the payment is settled or failed, so the quote's end is booked (and told to NUT-17
 * subscribers) without a wallet having to ask. The LightningBackend port reports outgoing payments
 * only when asked (`paymentState`), hence the re-checks. Timers are unref'd: they never keep the
 * process alive, and a restart picks the melts up again (MeltService.recoverPendingMelts).
 */
export class PendingMelts {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly firstDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxWatched: number;
  private closed = false;

  constructor(
    /** settles the melt if Lightning has news; answers true while it is still pending */
    private readonly stillPending: (quoteId: string) => Promise<boolean>,
    private readonly log: MintLogger,
    options: PendingMeltsOptions = {},
  ) {
    this.firstDelayMs = options.firstDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 60_000;
    this.maxWatched = options.maxWatched ?? 10_000;
  }

  /** Starts following a pending melt (a no-op if already followed, closed, or full). */
  watch(quoteId: string, delayMs = this.firstDelayMs): void {
    if (this.closed || this.timers.has(quoteId) || this.timers.size >= this.maxWatched) return;
    const timer = setTimeout(() => {
      this.timers.delete(quoteId);
      this.stillPending(quoteId).then(
        (pending) => {
          if (pending) this.watch(quoteId, Math.min(delayMs * 2, this.maxDelayMs));
        },
        (err: unknown) => {
          this.log.warn({ err, quoteRef: logRef(quoteId) }, 'melt: re-check failed; trying again later');
          this.watch(quoteId, Math.min(delayMs * 2, this.maxDelayMs));
        },
      );
    }, delayMs);
    timer.unref();
    this.timers.set(quoteId, timer);
  }

  /** Melts followed right now. */
  get size(): number {
    return this.timers.size;
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
