import { createHmac, randomBytes } from 'node:crypto';

export interface QuoteLimitsOptions {
  /** Unpaid quotes one client address may hold at once. */
  perClient: number;
  /** Unpaid quotes over every client. */
  maxUnpaid: number;
  /** Milliseconds since the epoch. */
  now?: () => number;
}

/** The answer of `take`: a quote may be made, or not before `retryAfterSeconds`. */
export type QuoteAllowance = { ok: true } | { ok: false; retryAfterSeconds: number };

/**
 * Bounds the quotes the mint makes for nothing (NUT-04: an invoice at the Lightning node and a
 * row each; NUT-05: a row each): how many may be unpaid at once per client address and over all.
 * A wallet that pays what it asks for is never held back, however many quotes it makes; one that
 * only asks is, and is told when its oldest unpaid quote expires (`Retry-After`). In memory only:
 * addresses are kept as keyed hashes under a per-process key, never stored or logged; after a
 * restart the count starts empty (earlier quotes expire by themselves).
 */
export class QuoteLimits {
  private readonly perClient: number;
  private readonly maxUnpaid: number;
  private readonly now: () => number;
  private readonly key = randomBytes(32);
  /** Unpaid quotes by id, in order of issue: the client (hashed) and expiry (ms). */
  private readonly unpaid = new Map<string, { client: string; expiresAt: number }>();
  /** Per hashed client: its unpaid quote ids, in order of issue. */
  private readonly byClient = new Map<string, Set<string>>();

  constructor(options: QuoteLimitsOptions) {
    for (const [name, v] of Object.entries({ perClient: options.perClient, maxUnpaid: options.maxUnpaid })) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be at least 1`);
    }
    this.perClient = options.perClient;
    this.maxUnpaid = options.maxUnpaid;
    this.now = options.now ?? Date.now;
  }

  /** Whether `client` (an address, or a /64 for IPv6) may have one more quote now. */
  take(client: string): QuoteAllowance {
    const now = this.now();
    this.forgetExpired(now);
    const mine = this.byClient.get(this.hash(client));
    if (mine && mine.size >= this.perClient) {
      // Quotes of uneven lifetimes (melt quotes) may have expired behind the front one.
      for (const id of [...mine]) if ((this.unpaid.get(id)?.expiresAt ?? 0) <= now) this.paid(id);
      if (mine.size >= this.perClient) return this.wait(mine.values().next().value, now);
    }
    if (this.unpaid.size >= this.maxUnpaid) return this.wait(this.unpaid.keys().next().value, now);
    return { ok: true };
  }

  /** Counts quote `id` of `client`, made after `take` allowed it, until `paid` or `expiresAt`. */
  issued(client: string, id: string, expiresAt: Date): void {
    const hashed = this.hash(client);
    this.unpaid.set(id, { client: hashed, expiresAt: expiresAt.getTime() });
    let mine = this.byClient.get(hashed);
    if (!mine) {
      mine = new Set();
      this.byClient.set(hashed, mine);
    }
    mine.add(id);
  }

  /** Quote `id` was paid (or used): it no longer counts. Unknown ids are ignored. */
  paid(id: string): void {
    const entry = this.unpaid.get(id);
    if (!entry) return;
    this.unpaid.delete(id);
    const mine = this.byClient.get(entry.client);
    mine?.delete(id);
    if (mine?.size === 0) this.byClient.delete(entry.client);
  }

  /** Unpaid quotes counted now (tests, metrics). */
  outstanding(): number {
    this.forgetExpired(this.now());
    return this.unpaid.size;
  }

  private wait(id: string | undefined, now: number): QuoteAllowance {
    const expiresAt = id === undefined ? now : (this.unpaid.get(id)?.expiresAt ?? now);
    return { ok: false, retryAfterSeconds: Math.max(1, Math.min(3600, Math.ceil((expiresAt - now) / 1000))) };
  }

  private forgetExpired(now: number): void {
    // Quotes of one kind live equally long, so issue order is expiry order; one that expires
    // sooner behind a later one goes when it reaches the front.
    for (const [id, entry] of this.unpaid) {
      if (entry.expiresAt > now) break;
      this.paid(id);
    }
  }

  private hash(client: string): string {
    return createHmac('sha256', this.key).update(client).digest('base64url');
  }
}
