import { createHash } from 'node:crypto';
import { Amount as CashuAmount, getDecodedToken, getEncodedToken, getTokenMetadata } from '@cashu/cashu-ts';
import { Amount } from '../../core/amount.js';
import { AlacarteError } from '../../core/errors.js';
import type { PaymentKey } from '../../core/ids.js';
import type { NodeSecret } from '../../leases/node-secret.js';
import type { Logger } from '../../log.js';
import { MintError, MintErrorCode } from '../../mint/errors.js';
import type { NodePayments, UnblindedItem } from '../../mint/node-payments.js';
import { isUniqueViolation, type MintTrx } from '../../mint/store/mint-store.js';
import type { Proof } from '../../mint/types.js';
import type { Database } from '../../store/database.js';
import type {
  Challenge,
  InspectedPayment,
  PaymentHeaders,
  PaymentRail,
  PayoutPart,
  Rejection,
} from '../payment-rail.js';
import { denominations } from './derived-outputs.js';
import { ExternalMint, type ExternalPayment, type KeptPayment } from './external-mint.js';
import { MintUnavailable } from './mint-client.js';
import { encodePaymentRequest } from './nut-18.js';
import { normalizeMintUrl, toMintProofs } from './proofs.js';

export { denominations };

export interface CashuRailOptions {
  /** This node's own mint, used in-process. */
  mint: NodePayments;
  /** The URL wallets know this node's mint by (read late: the port may be known only once listening). */
  mintUrl: () => string;
  unit: string;
  secret: NodeSecret;
  /** Largest `X-Cashu` header accepted, in bytes. */
  maxTokenBytes?: number;
  /** Most proofs in one payment. */
  maxProofs?: number;
  /**
   * Other mints whose tokens are accepted: swapped there over HTTP before anything is granted.
   * Needs `db` (the swap happens before the store transaction, which the rail then opens).
   */
  trustedMints?: readonly string[];
  db?: Database;
  /** HTTP for trusted mints (tests inject one); the global fetch by default. */
  fetch?: typeof fetch;
  /** Deadline of one HTTP exchange with a trusted mint, default 5 s. */
  mintTimeoutMs?: number;
  /** Keep swap answers in memory for the answer that follows (default); off makes every payout restore. */
  cacheSignatures?: boolean;
  logger?: Logger;
}

const TOKEN_PREFIX = /^cashu[AB][A-Za-z0-9_\-+/=]+$/;

/**
 * NUT-24 over this node's own mint: a 402 carries a NUT-18 request; a token in `X-Cashu` is
 * checked without moving money, then redeemed in-process in the lease's own store transaction.
 * Change and refunds are fresh ecash of the same mint whose secrets derive from the node secret,
 * so a replay shows the same tokens without the store keeping them.
 */
export class CashuRail implements PaymentRail {
  readonly id = 'cashu';
  private readonly mint: NodePayments;
  private readonly mintUrlOf: () => string;
  private readonly unit: string;
  private readonly secret: NodeSecret;
  private readonly maxTokenBytes: number;
  private readonly maxProofs: number;
  /** The decoded proofs of each inspected payment, until it is redeemed or dropped. */
  private readonly proofsOf = new WeakMap<InspectedPayment, Proof[]>();
  /** Trusted mints by normalised URL. */
  private readonly external = new Map<string, ExternalMint>();
  private readonly externalPayments = new WeakMap<InspectedPayment, ExternalPayment>();
  private readonly db: Database | undefined;
  private readonly log: Logger | undefined;

  constructor(options: CashuRailOptions) {
    this.mint = options.mint;
    this.mintUrlOf = options.mintUrl;
    this.unit = options.unit;
    this.secret = options.secret;
    this.maxTokenBytes = options.maxTokenBytes ?? 64 * 1024;
    this.maxProofs = options.maxProofs ?? 1000;
    this.db = options.db;
    this.log = options.logger;
    for (const url of options.trustedMints ?? []) {
      if (!this.db) throw new Error('trusted mints need the store');
      const trimmed = url.trim().replace(/\/+$/, '');
      this.external.set(
        normalizeMintUrl(trimmed),
        new ExternalMint({
          url: trimmed,
          secret: this.secret,
          unit: this.unit,
          fetch: options.fetch,
          timeoutMs: options.mintTimeoutMs,
          maxProofs: this.maxProofs,
          signatureTtlMs: options.cacheSignatures === false ? 0 : undefined,
          logger: options.logger,
        }),
      );
    }
  }

  /** Every mint whose tokens are accepted, this node's own first. */
  mints(): string[] {
    return [this.mintUrl, ...[...this.external.values()].map((m) => m.url)];
  }

  private get mintUrl(): string {
    return this.mintUrlOf();
  }

  challenge(price: Amount): Challenge {
    const mints = this.mints();
    return {
      headers: { 'x-cashu': encodePaymentRequest({ amount: price, mints }) },
      body: { amount: price.toNumber(), unit: price.unit, mints },
    };
  }

  async inspect(
    headers: PaymentHeaders,
  ): Promise<{ ok: true; payment: InspectedPayment } | Rejection | undefined> {
    const header = headers['x-cashu'];
    if (header === undefined || header === '') return undefined;
    if (typeof header !== 'string') return reject('invalid_token', 'send exactly one X-Cashu header');
    if (header.length > this.maxTokenBytes) return reject('invalid_token', 'the token is too large');
    if (!TOKEN_PREFIX.test(header))
      return reject('invalid_token', 'X-Cashu must hold a cashuA or cashuB token');

    let mintUrl: string;
    let unit: string;
    try {
      const meta = getTokenMetadata(header);
      mintUrl = meta.mint;
      unit = meta.unit ?? 'sat';
    } catch {
      return reject('invalid_token', 'the token cannot be decoded');
    }
    const own = normalizeMintUrl(mintUrl) === normalizeMintUrl(this.mintUrl);
    const external = own ? undefined : this.external.get(normalizeMintUrl(mintUrl));
    if (!own && !external) {
      return reject(
        'mint_not_accepted',
        `tokens of ${truncate(mintUrl)} are not accepted here; use ${this.mints().join(' or ')}`,
      );
    }
    if (unit !== this.unit)
      return reject('unit_mismatch', `this node takes ${this.unit}, not ${truncate(unit)}`);
    if (external) return this.inspectExternal(external, header);

    let proofs: Proof[];
    try {
      proofs = toMintProofs(getDecodedToken(header, this.mint.keysetIds()).proofs, this.maxProofs);
    } catch {
      return reject('invalid_token', 'the token cannot be decoded or holds malformed proofs');
    }
    let inspected: ReturnType<NodePayments['inspect']>;
    try {
      inspected = this.mint.inspect(proofs);
    } catch (err) {
      if (err instanceof MintError)
        return reject('invalid_token', `the token is not valid here: ${err.message}`);
      throw err;
    }
    if (inspected.unit !== this.unit) return reject('unit_mismatch', `this node takes ${this.unit}`);
    const payment: InspectedPayment = {
      rail: this.id,
      key: paymentKey(inspected.Ys),
      amount: Amount.of(inspected.total, this.unit),
      fee: Amount.of(inspected.fee, this.unit),
      source: this.mintUrl,
    };
    this.proofsOf.set(payment, proofs);
    return { ok: true, payment };
  }

  private async inspectExternal(
    mint: ExternalMint,
    header: string,
  ): Promise<{ ok: true; payment: InspectedPayment } | Rejection> {
    const inspected = await mint.inspect(header);
    if (!inspected.ok) return inspected;
    const payment: InspectedPayment = {
      rail: this.id,
      key: paymentKey(inspected.payment.Ys),
      amount: Amount.of(inspected.payment.total, this.unit),
      fee: Amount.of(inspected.payment.fee, this.unit),
      source: mint.url,
    };
    this.externalPayments.set(payment, inspected.payment);
    return { ok: true, payment };
  }

  async redeem(
    payment: InspectedPayment,
    price: Amount,
    record: (trx: Database) => Promise<void>,
  ): Promise<{ ok: true } | Rejection> {
    const external = this.externalPayments.get(payment);
    if (external) return this.redeemExternal(payment, external, price, record);
    const proofs = this.proofsOf.get(payment);
    if (!proofs) throw new Error('redeem of a payment this rail did not inspect');
    try {
      // One Kysely instance serves every domain's tables; the transaction is the same object.
      await this.mint.take(proofs, (trx: MintTrx) => record(trx as unknown as Database));
      return { ok: true };
    } catch (err) {
      if (err instanceof MintError) {
        if (err.code === MintErrorCode.proofsSpent || err.code === MintErrorCode.proofsPending) {
          return reject('token_spent', 'this token has already been spent');
        }
        return reject('invalid_token', `the token is not valid: ${err.message}`);
      }
      throw err;
    }
  }

  /** Swap at the trusted mint first (nothing recorded yet), then the store transaction. */
  private async redeemExternal(
    payment: InspectedPayment,
    external: ExternalPayment,
    price: Amount,
    record: (trx: Database) => Promise<void>,
  ): Promise<{ ok: true } | Rejection> {
    const mint = this.externalMint(payment.source);
    const db = this.db;
    if (!db) throw new Error('trusted mints need the store');
    try {
      return await mint.redeem(external, payment.key, price.value, () =>
        db.transaction().execute((trx) => record(trx)),
      );
    } catch (err) {
      // A concurrent request (another replica) recorded this payment first: its replay answers.
      if (isUniqueViolation(err)) return reject('token_spent', 'this token has already been spent');
      if (isLeaseEnded(err)) throw await this.bounce(mint, payment, external, price, err);
      // Anything else: nothing recorded, the swap stands; the same request again recovers it.
      throw err;
    }
  }

  /**
   * The money was swapped at the mint, but the lease it was to extend ended in the meantime (that
   * end is final, so a retry would never record it): it goes back to the payer in the answer.
   */
  private async bounce(
    mint: ExternalMint,
    payment: InspectedPayment,
    external: ExternalPayment,
    price: Amount,
    cause: unknown,
  ): Promise<unknown> {
    let proofs: Proof[];
    try {
      proofs = await mint.bounce(external, payment.key, price.value);
    } catch (err) {
      this.log?.error(
        { mint: mint.url, reason: String(err) },
        'could not return a payment for an ended lease',
      );
      return cause;
    }
    const refund =
      proofs.length === 0
        ? null
        : getEncodedToken({
            mint: mint.url,
            unit: this.unit,
            proofs: proofs.map((p) => ({ ...p, amount: CashuAmount.from(p.amount) })),
          });
    return new AlacarteError(
      'lease_not_running',
      'the lease ended before this payment arrived; it is returned',
      {
        details: { refund, refunded: proofs.reduce((n, p) => n + p.amount, 0) },
        cause,
      },
    );
  }

  async book(trx: Database, source: string, parts: readonly PayoutPart[]): Promise<void> {
    // Payouts at a trusted mint are swaps made when shown (payout), out of what the node holds
    // there; nothing is issued here.
    if (!this.isOwn(source)) return;
    await this.mint.issue(trx as unknown as MintTrx, this.unit, this.items(parts));
  }

  async payout(source: string, parts: readonly PayoutPart[]): Promise<string | null> {
    if (!this.isOwn(source)) return this.payoutExternal(this.externalMint(source), parts);
    const items = this.items(parts);
    if (items.length === 0) return null;
    const proofs = await this.mint.issued(items);
    return getEncodedToken({
      mint: this.mintUrl,
      unit: this.unit,
      proofs: proofs.map((p) => ({ ...p, amount: CashuAmount.from(p.amount) })),
    });
  }

  private async payoutExternal(mint: ExternalMint, parts: readonly PayoutPart[]): Promise<string | null> {
    const proofs: Proof[] = [];
    try {
      for (const part of parts) {
        if (part.amount.isZero()) continue;
        if (part.purpose === 'change') {
          proofs.push(...(await mint.changeProofs(part.subject, part.amount.value)));
        } else {
          proofs.push(
            ...(await mint.refundProofs(
              part.subject,
              part.amount.value,
              await this.kept(part.subject, mint.url),
            )),
          );
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
    if (proofs.length === 0) return null;
    return getEncodedToken({
      mint: mint.url,
      unit: this.unit,
      proofs: proofs.map((p) => ({ ...p, amount: CashuAmount.from(p.amount) })),
    });
  }

  /**
   * What the node kept of a lease's payments at one mint, oldest first. A lease paid at several
   * mints is refunded from the mint of its first payment only, up to what was kept there.
   */
  private async kept(leaseId: string, mintUrl: string): Promise<KeptPayment[]> {
    if (!this.db) throw new Error('trusted mints need the store');
    const rows = await this.db
      .selectFrom('payments')
      .select(['key', 'kept'])
      .where('lease_id', '=', leaseId)
      .where('mint_url', '=', mintUrl)
      .orderBy('seq')
      .execute();
    return rows.map((r) => ({ key: r.key, kept: BigInt(r.kept) }));
  }

  private isOwn(source: string): boolean {
    return normalizeMintUrl(source) === normalizeMintUrl(this.mintUrl);
  }

  private externalMint(source: string): ExternalMint {
    const mint = this.external.get(normalizeMintUrl(source));
    if (!mint) throw new Error('a payment of a mint that is no longer trusted');
    return mint;
  }

  /** The denominations and derived secrets of every part, in a fixed order. */
  private items(parts: readonly PayoutPart[]): UnblindedItem[] {
    const items: UnblindedItem[] = [];
    for (const part of parts) {
      denominations(part.amount.value).forEach((amount, i) => {
        items.push({
          amount,
          secret: this.secret.derive('payout', `${part.purpose}/${part.subject}/${i}`).toString('hex'),
        });
      });
    }
    return items;
  }
}

/** The payment's idempotency key: sha256 over its proofs' sorted Y points. */
export function paymentKey(Ys: readonly string[]): PaymentKey {
  const hash = createHash('sha256');
  for (const Y of [...Ys].sort()) hash.update(Y);
  return hash.digest('hex') as PaymentKey;
}

/**
 * The lease service's signal that a lease ended while its extension was being paid (a final
 * state). Matched by name: the class is private to the service.
 */
function isLeaseEnded(err: unknown): boolean {
  return err instanceof Error && err.constructor.name === 'LeaseEnded';
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function reject(code: Rejection['code'], message: string): Rejection {
  return { ok: false, code, message };
}
