import { Amount as CashuAmount, getEncodedToken } from '@cashu/cashu-ts';
import { Amount } from '../../core/amount.js';
import { AlacarteError } from '../../core/errors.js';
import type { NodeSecret } from '../../leases/node-secret.js';
import type { Logger } from '../../log.js';
import { isUniqueViolation } from '../../mint/store/mint-store.js';
import type { Proof } from '../../mint/types.js';
import type { Database } from '../../store/database.js';
import type { InspectedPayment, PayoutPart, Rejection } from '../payment-rail.js';
import {
  type EndedLeaseAtMint,
  ExternalMint,
  type ExternalPayment,
  type KeptPayment,
} from './external-mint.js';
import { MintUnavailable } from './mint-client.js';
import { normalizeMintUrl, paymentKey } from './proofs.js';

export interface TrustedMintsOptions {
  urls: readonly string[];
  /** The store: the swap happens before the lease's transaction, which is then opened here. */
  db: Database;
  secret: NodeSecret;
  unit: string;
  railId: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
  maxProofs?: number;
  /** Keep swap answers in memory for the answer that follows (default); off makes every payout restore. */
  cacheSignatures?: boolean;
  logger?: Logger;
}

/**
 * The Cashu rail's side for mints the operator trusts (config `trustedMints`): which they are,
 * and inspect / redeem / payout of their tokens through ExternalMint. Nothing is booked for them
 * in this node's mint: change and refunds are that mint's own ecash.
 */
export class TrustedMints {
  private readonly mints = new Map<string, ExternalMint>();

  private readonly payments = new WeakMap<InspectedPayment, ExternalPayment>();
  private readonly db: Database;
  private readonly unit: string;
  private readonly railId: string;
  private readonly log: Logger | undefined;

  constructor(options: TrustedMintsOptions) {
    this.db = options.db;
    this.unit = options.unit;
    this.railId = options.railId;
    this.log = options.logger;
    for (const url of options.urls) {
      const trimmed = url.trim().replace(/\/+$/, '');
      if (!/^https?:\/\//i.test(trimmed)) throw new Error(`trusted mint ${trimmed} must be an http(s) URL`);
      this.mints.set(
        normalizeMintUrl(trimmed),
        new ExternalMint({
          url: trimmed,
          secret: options.secret,
          unit: options.unit,
          fetch: options.fetch,
          timeoutMs: options.timeoutMs,
          maxProofs: options.maxProofs,
          signatureTtlMs: options.cacheSignatures === false ? 0 : undefined,
          logger: options.logger,
        }),
      );
    }
  }

  /** The trusted mints' URLs, as configured. */
  urls(): string[] {
    return [...this.mints.values()].map((m) => m.url);
  }

  has(url: string): boolean {
    return this.mints.has(normalizeMintUrl(url));
  }

  /** The trusted mint `url` (any spelling) as configured. */
  urlOf(url: string): string {
    return this.mint(url).url;
  }

  /** Checks a token of the trusted mint `url` (the caller checked it is trusted); no money moves. */
  async inspect(url: string, token: string): Promise<{ ok: true; payment: InspectedPayment } | Rejection> {
    const mint = this.mint(url);
    const inspected = await mint.inspect(token);
    if (!inspected.ok) return inspected;
    const payment: InspectedPayment = {
      rail: this.railId,
      key: paymentKey(inspected.payment.Ys),
      amount: Amount.of(inspected.payment.total, this.unit),
      fee: Amount.of(inspected.payment.fee, this.unit),
      inputs: inspected.payment.proofs.length,
      source: mint.url,
    };
    this.payments.set(payment, inspected.payment);
    return { ok: true, payment };
  }

  /** Whether `payment` was read here (then `redeem` takes it). */
  owns(payment: InspectedPayment): boolean {
    return this.payments.has(payment);
  }

  /** Swap at the trusted mint first (nothing recorded yet), then the store transaction. */
  async redeem(
    payment: InspectedPayment,
    price: Amount,
    record: (trx: Database) => Promise<void>,
  ): Promise<{ ok: true } | Rejection> {
    const external = this.payments.get(payment);
    if (!external) throw new Error('redeem of a payment this rail did not read');
    const mint = this.mint(payment.source);
    try {
      return await mint.redeem(external, payment.key, price.value, () =>
        this.db.transaction().execute((trx) => record(trx)),
      );
    } catch (err) {
      // A concurrent request (another replica) recorded this payment first: its replay answers.
      if (isUniqueViolation(err))
        return { ok: false, code: 'token_spent', message: 'this token has already been spent' };
      // Anything else: nothing recorded, the swap stands; the same request again recovers it, or
      // (the lease ended meanwhile) gets it back through giveBack.
      throw err;
    }
  }

  /** One token of the trusted mint holding every part; the same again on every call. */
  async payout(source: string, parts: readonly PayoutPart[]): Promise<string | null> {
    const mint = this.mint(source);
    const proofs: Proof[] = [];
    try {
      for (const part of parts) {
        if (part.amount.isZero()) continue;
        if (part.purpose === 'change') {
          proofs.push(...(await mint.changeProofs(part.subject, part.amount.value)));
        } else {
          const kept = await this.kept(part.subject, mint.url);
          proofs.push(...(await mint.refundProofs(part.subject, part.amount.value, kept)));
        }
      }
    } catch (err) {
      // The lease and payment are recorded; the same request again shows the token.
      if (err instanceof MintUnavailable)
        throw new AlacarteError(
          'mint_unavailable',
          `the mint ${mint.url} cannot be reached right now; retry`,
        );
      throw err;
    }
    return this.encode(mint, proofs);
  }

  /**
   * The money was swapped at the mint, but the lease it was to extend ended in the meantime (that
   * end is final, so a retry would never record it): what the swap made for the payment goes back
   * to the payer, as the same token on every call. null when this payment (at this price) was
   * never swapped here.
   */
  async giveBack(
    payment: InspectedPayment,
    price: Amount,
  ): Promise<{ token: string | null; amount: Amount } | null> {
    const external = this.payments.get(payment);
    if (!external) throw new Error('giveBack of a payment this rail did not read');
    const mint = this.mint(payment.source);
    let proofs: Proof[] | null;
    try {
      proofs = await mint.bounce(external, payment.key, price.value);
    } catch (err) {
      if (err instanceof MintUnavailable) {
        this.log?.error(
          { mint: mint.url, reason: err.message },
          'could not return a payment for an ended lease',
        );
        throw new AlacarteError(
          'mint_unavailable',
          `the mint ${mint.url} cannot be reached to return this payment right now; retry`,
          { cause: err },
        );
      }
      throw err;
    }
    if (proofs === null) return null;
    const value = proofs.reduce((n, p) => n + BigInt(p.amount), 0n);
    return { token: this.encode(mint, proofs), amount: Amount.of(value, this.unit) };
  }

  /**
   * The unspent proofs the node holds at trusted mint `url` from ended leases (kept parts and
   * refund remainders; ExternalMint.heldProofs), for a payout. Throws MintUnavailable.
   */
  async held(url: string): Promise<Proof[]> {
    const mint = this.mint(url);
    const here = normalizeMintUrl(mint.url);
    const payments = await this.db
      .selectFrom('payments')
      .innerJoin('leases', 'leases.id', 'payments.lease_id')
      .select([
        'payments.lease_id',
        'payments.key',
        'payments.amount',
        'payments.fee',
        'payments.change',
        'payments.mint_url',
      ])
      .where('leases.state', 'in', ['expired', 'stopped', 'failed'])
      .orderBy('payments.seq')
      .execute();
    const leases = new Map<string, EndedLeaseAtMint>();
    for (const r of payments) {
      if (normalizeMintUrl(r.mint_url) !== here) continue;
      const lease = leases.get(r.lease_id) ?? { leaseId: r.lease_id, refund: 0n, payments: [] };
      lease.payments.push({ key: r.key, kept: BigInt(r.amount) - BigInt(r.fee) - BigInt(r.change) });
      leases.set(r.lease_id, lease);
    }
    const refunds = await this.db
      .selectFrom('lease_refunds')
      .select(['lease_id', 'mint_url', 'amount'])
      .execute();
    for (const r of refunds) {
      const lease = leases.get(r.lease_id);
      if (lease && normalizeMintUrl(r.mint_url) === here) lease.refund += BigInt(r.amount);
    }
    return mint.heldProofs([...leases.values()]);
  }

  /**
   * What the node kept of a lease's payments at one mint, oldest first: the lease service splits a
   * refund over mints (never more from one than was kept there), this mint pays its share.
   */
  private async kept(leaseId: string, mintUrl: string): Promise<KeptPayment[]> {
    const rows = await this.db
      .selectFrom('payments')
      .select(['key', 'amount', 'fee', 'change', 'mint_url'])
      .where('lease_id', '=', leaseId)
      .orderBy('seq')
      .execute();
    const mint = normalizeMintUrl(mintUrl);
    // What the swap made for the node: the price, less any input fee the node bore
    // (core/input-fees.ts), which is what its kept outputs were derived for.
    return rows
      .filter((r) => normalizeMintUrl(r.mint_url) === mint)
      .map((r) => ({ key: r.key, kept: BigInt(r.amount) - BigInt(r.fee) - BigInt(r.change) }));
  }

  private encode(mint: ExternalMint, proofs: readonly Proof[]): string | null {
    if (proofs.length === 0) return null;
    return getEncodedToken({
      mint: mint.url,
      unit: this.unit,
      proofs: proofs.map((p) => ({ ...p, amount: CashuAmount.from(p.amount) })),
    });
  }

  private mint(url: string): ExternalMint {
    const mint = this.mints.get(normalizeMintUrl(url));
    if (!mint) throw new Error('a payment at a mint that is not trusted');
    return mint;
  }
}
