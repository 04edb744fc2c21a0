import { createHmac, randomBytes } from 'node:crypto';

export interface InvoiceLimitsOptions {
  /** Fresh invoices one client address may have per minute, on average (the bucket's refill). */
  perMinute: number;
  /** Fresh invoices one client address may have at once, before the refill rate applies. */
  burst: number;
  /** Invoices issued and neither paid, claimed nor expired, over every client. */
  maxUnpaid: number;
  /** Client addresses remembered at once; the one heard from least recently is forgotten first. */
  maxClients?: number;
  /** Milliseconds since the epoch. */
  now?: () => number;
}

/** The answer of `take`: an invoice may be made, or not before `retryAfterSeconds`. */
export type InvoiceAllowance = { ok: true } | { ok: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Bounds the Lightning invoices unpaid 402s make (each one is work and state at the Lightning
 * node): a token bucket per client address and a cap on invoices outstanding over all clients.
 * Everything is in memory and starts empty after a restart (invoices left from before expire at the
 * backend by themselves). Addresses are never kept: a bucket is found by a keyed hash of the
 * address under a key that lives only in this process, and nothing here is logged.
 */
export class InvoiceLimits {
  private readonly perMs: number;
  private readonly burst: number;
  private readonly maxUnpaid: number;
  private readonly maxClients: number;
  private readonly now: () => number;
  private readonly key = randomBytes(32);
  /** Buckets by keyed hash of the address, least recently heard from first. */
  private readonly buckets = new Map<string, Bucket>();
  /** Outstanding invoices by payment hash, with their expiry (ms), in order of issue. */
  private readonly unpaid = new Map<string, number>();

  constructor(options: InvoiceLimitsOptions) {
    for (const [name, v] of Object.entries({
      perMinute: options.perMinute,
      burst: options.burst,
      maxUnpaid: options.maxUnpaid,
    })) {
      if (!Number.isFinite(v) || v < 1) throw new RangeError(`${name} must be at least 1`);
    }
    this.perMs = options.perMinute / 60_000;
    this.burst = options.burst;
    this.maxUnpaid = options.maxUnpaid;
    this.maxClients = options.maxClients ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * Takes one invoice from `client`'s bucket (an address, or a /64 for IPv6; undefined counts as
   * one shared client) if the global cap has room too. Nothing is taken when refused.
   */
  take(client: string | undefined): InvoiceAllowance {
    const now = this.now();
    this.forgetExpired(now);
    const id = createHmac('sha256', this.key)
      .update(client ?? '')
      .digest('base64url');
    const bucket = this.buckets.get(id) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.perMs);
    bucket.at = now;
    // Re-inserted: the most recently heard from is the last to be forgotten.
    this.buckets.delete(id);
    this.buckets.set(id, bucket);
    while (this.buckets.size > this.maxClients) {
      const oldest = this.buckets.keys().next();
      if (oldest.done) break;
      this.buckets.delete(oldest.value);
    }
    if (bucket.tokens < 1) {
      return {
        ok: false,
        retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000)),
      };
    }
    if (this.unpaid.size >= this.maxUnpaid) {
      // The first to expire frees the first place.
      const first = this.unpaid.values().next();
      const wait = first.done ? 1 : Math.ceil((first.value - now) / 1000);
      return { ok: false, retryAfterSeconds: Math.max(1, Math.min(wait, 3600)) };
    }
    bucket.tokens -= 1;
    return { ok: true };
  }

  /** Counts an invoice made after `take` allowed it, until it is paid or expires. */
  issued(paymentHash: string, expiresAt: Date): void {
    this.unpaid.set(paymentHash, expiresAt.getTime());
  }

  /** An invoice was paid (or claimed, or handed back): it no longer counts. */
  paid(paymentHash: string): void {
    this.unpaid.delete(paymentHash);
  }

  /** Invoices counted now (for tests and metrics). */
  outstanding(): number {
    this.forgetExpired(this.now());
    return this.unpaid.size;
  }

  private forgetExpired(now: number): void {
    // Every invoice of a backend lives equally long, so issue order is expiry order; a later one
    // that expires sooner is dropped when it gets to the front.
    for (const [hash, expiresAt] of this.unpaid) {
      if (expiresAt > now) break;
      this.unpaid.delete(hash);
    }
  }
}
