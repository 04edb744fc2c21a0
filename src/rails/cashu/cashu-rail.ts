import { Amount as CashuAmount, getEncodedToken, getTokenMetadata } from '@cashu/cashu-ts';
import { Amount } from '../../core/amount.js';
import type { NodeSecret } from '../../leases/node-secret.js';
import type { Logger } from '../../log.js';
import { MintError, MintErrorCode } from '../../mint/errors.js';
import type { NodePayments, UnblindedItem } from '../../mint/node-payments.js';
import type { MintTrx } from '../../mint/store/mint-store.js';
import type { Proof } from '../../mint/types.js';
import type { Database } from '../../store/database.js';
import type {
  Challenge,
  GivenBack,
  InspectedPayment,
  Owed,
  OwedPart,
  PaymentHeaders,
  PaymentRail,
  PaymentRequest,
  PaymentSubject,
  PayoutPart,
  RecordPayment,
  Redeemed,
  Rejection,
} from '../payment-rail.js';
import { byMint, changeOf, NO_PAYMENT, redeemedOf } from '../payment-rail.js';
import { denominations } from './derived-outputs.js';
import { encodePaymentRequest } from './nut-18.js';
import { normalizeMintUrl, paymentKey } from './proofs.js';
import { decodeForMint, proofsForMint, singleMint } from './token-mints.js';
import { TrustedMints } from './trusted-mints.js';

export { denominations, paymentKey };

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
   * Other mints whose tokens are accepted (config `trustedMints`): swapped there over HTTP before
   * anything is granted (see trusted-mints.ts). Needs `db`.
   */
  trustedMints?: readonly string[];
  db?: Database;
  /** HTTP towards trusted mints; the global fetch by default. */
  fetch?: typeof fetch;
  /** Deadline of one HTTP exchange with a trusted mint, default 5 s. */
  mintTimeoutMs?: number;
  logger?: Logger;
}

const TOKEN_PREFIX = /^cashu[AB][A-Za-z0-9_\-+/=]+$/;

/**
 * NUT-24 over this node's own mint: a 402 carries a NUT-18 request; a token in `X-Cashu` is
 * checked without moving money, admitted by the caller by its key, then redeemed in-process in the
 * lease's own store transaction (one `redeem` call).
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
  /** The decoded proofs of each payment read, until it is taken or dropped. */
  private readonly proofsOf = new WeakMap<InspectedPayment, Proof[]>();
  private readonly trusted: TrustedMints | undefined;

  constructor(options: CashuRailOptions) {
    this.mint = options.mint;
    this.mintUrlOf = options.mintUrl;
    this.unit = options.unit;
    this.secret = options.secret;
    this.maxTokenBytes = options.maxTokenBytes ?? 64 * 1024;
    this.maxProofs = options.maxProofs ?? 1000;
    if (options.trustedMints?.length) {
      if (!options.db) throw new Error('trusted mints need the store');
      this.trusted = new TrustedMints({
        urls: options.trustedMints,
        db: options.db,
        secret: this.secret,
        unit: this.unit,
        railId: this.id,
        fetch: options.fetch,
        timeoutMs: options.mintTimeoutMs,
        maxProofs: this.maxProofs,
        logger: options.logger,
      });
    }
  }

  /** Every mint whose tokens are accepted, this node's own first. */
  mints(): string[] {
    return [this.mintUrl, ...(this.trusted?.urls() ?? [])];
  }

  /** Whether tokens of `url` are taken: this node's own mint or a trusted one. */
  private accepts(url: string): boolean {
    return normalizeMintUrl(url) === normalizeMintUrl(this.mintUrl) || this.trusted?.has(url) === true;
  }

  private get mintUrl(): string {
    return this.mintUrlOf();
  }

  async challenge(price: Amount, _subject?: PaymentSubject): Promise<Challenge> {
    const mints = this.mints();
    return {
      instructions: 'pay in the X-Cashu header',
      headers: { 'x-cashu': encodePaymentRequest({ amount: price, mints }) },
      body: { amount: price.toNumber(), unit: price.unit, mints },
    };
  }

  /**
   * PaymentRail.redeem: the token in X-Cashu read and checked (`read`, no money moves), admitted by
   * the caller, then taken (`take`).
   */
  async redeem(request: PaymentRequest, price: Amount): Promise<Redeemed | Rejection> {
    const read = await this.read(request.headers);
    if (!read.ok) return read;
    await request.admit?.(read.payment);
    return this.take(read.payment, price, request.record);
  }

  /**
   * The token in X-Cashu, decoded and checked without moving money: one header, bounded, one mint
   * that is accepted, the node's unit, proofs this node's mint (or the trusted mint) can verify.
   */
  private async read(headers: PaymentHeaders): Promise<{ ok: true; payment: InspectedPayment } | Rejection> {
    const header = headers['x-cashu'];
    if (header === undefined || header === '') return NO_PAYMENT;
    if (typeof header !== 'string') return reject('invalid_token', 'send exactly one X-Cashu header');
    if (header.length > this.maxTokenBytes)
      return reject('payload_too_large', `the token is larger than ${this.maxTokenBytes} bytes`);
    if (!TOKEN_PREFIX.test(header))
      return reject('invalid_token', 'X-Cashu must hold a cashuA or cashuB token');

    const single = singleMint(header);
    if ('mints' in single) {
      const foreign = single.mints.find((m) => !this.accepts(m));
      return reject(
        'mint_not_accepted',
        foreign === undefined
          ? `one token must hold the proofs of one mint; send one token of ${this.mints().join(' or ')}`
          : `tokens of ${truncate(foreign)} are not accepted here; use ${this.mints().join(' or ')}`,
      );
    }
    const token = single.token;
    let mintUrl: string;
    let unit: string;
    try {
      const meta = getTokenMetadata(token);
      // The decoder checks no types: a V3 (JSON) token may name a number or a list as its mint.
      if (typeof meta.mint !== 'string' || (meta.unit !== undefined && typeof meta.unit !== 'string'))
        return reject('invalid_token', 'the token names no mint or unit');
      mintUrl = meta.mint;
      unit = meta.unit ?? 'sat';
    } catch {
      return reject('invalid_token', 'the token cannot be decoded');
    }
    const own = normalizeMintUrl(mintUrl) === normalizeMintUrl(this.mintUrl);
    if (!this.accepts(mintUrl)) {
      return reject(
        'mint_not_accepted',
        `tokens of ${truncate(mintUrl)} are not accepted here; use ${this.mints().join(' or ')}`,
      );
    }
    if (unit !== this.unit)
      return reject('unit_mismatch', `this node takes ${this.unit}, not ${truncate(unit)}`);
    if (!own && this.trusted) return this.trusted.inspect(mintUrl, token);

    const decoded = decodeForMint(token, this.mint.keysetIds());
    const taken = proofsForMint(decoded, truncate(mintUrl), this.maxProofs);
    if (!taken.ok) return taken;
    const proofs = taken.proofs;
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

  /**
   * Takes a read payment: at a trusted mint a swap there, then the store transaction; at this
   * node's own mint the proofs spent, the change booked and `record` run in one transaction.
   */
  private async take(
    payment: InspectedPayment,
    price: Amount,
    record: RecordPayment,
  ): Promise<Redeemed | Rejection> {
    const redeemed = redeemedOf(payment, price);
    if (!redeemed) return reject('insufficient_amount', `the token does not pay ${price}`);
    if (this.trusted?.owns(payment)) {
      // Change at a trusted mint is a swap made when shown (payout): nothing to book here.
      const taken = await this.trusted.redeem(payment, price, (trx) => record(trx, redeemed));
      return taken.ok ? redeemed : taken;
    }
    const proofs = this.proofsOf.get(payment);
    if (!proofs) throw new Error('redeem of a payment this rail did not read');
    try {
      let presigned: Promise<void> | undefined;
      // One Kysely instance serves every domain's tables; the transaction is the same object.
      const taking = this.mint.take(proofs, async (mintTrx: MintTrx) => {
        await presigned;
        const trx = mintTrx as unknown as Database;
        await this.giveBack({ kind: 'parts', parts: [changeOf(redeemed)] }, trx);
        await record(trx, redeemed);
      });
      // The change is signed on the curve threads in the same batch as the proofs' verification
      // (both asked in this turn, the proofs first: the change never counts against the payment
      // in the curve queue's bound), so that the transaction signs nothing; should that fail,
      // issue() signs it there as before. The transaction starts after the verification, so
      // `presigned` is set by then.
      const change = changeOf(redeemed);
      if (!change.amount.isZero())
        presigned = this.mint.presign(this.unit, this.items([change])).catch(() => {});
      await taking;
      return redeemed;
    } catch (err) {
      if (err instanceof MintError) {
        if (err.status === 503) {
          // The curve threads hold more work than they take (config mint.curveMaxQueuedProofs):
          // refused before the transaction, so nothing was taken; the token pays as it is later.
          return {
            ...reject('no_capacity', 'the node is busy checking payments; retry in a second'),
            retryAfterSeconds: 1,
          };
        }
        if (err.code === MintErrorCode.proofsSpent || err.code === MintErrorCode.proofsPending) {
          return reject('token_spent', 'this token has already been spent');
        }
        return reject('invalid_token', `the token is not valid: ${err.message}`);
      }
      throw err;
    }
  }

  /**
   * PaymentRail.giveBack: change and refunds in ecash of the mint that was paid. At this node's
   * own mint they are signed and booked as issued in the caller's transaction, and shown later
   * from the booked signatures; at a trusted mint they are swaps made when shown, out of what the
   * node holds there (nothing to book). An unused payment at the own mint was never taken (its
   * proofs are spent in the very transaction that records what they buy).
   */
  async giveBack(owed: Owed, trx?: Database): Promise<GivenBack[]> {
    if (owed.kind === 'unused') {
      if (trx) throw new Error('an unused payment is given back on its own, not in a transaction');
      if (!this.trusted?.owns(owed.payment)) return [];
      const back = await this.trusted.giveBack(owed.payment, owed.price);
      return back ? [{ mint: this.payoutSource(owed.payment.source), ...back }] : [];
    }
    const groups = byMint(owed.parts, (source) => this.payoutSource(source));
    const given: GivenBack[] = [];
    for (const group of groups) {
      const trusted = this.trusted && this.isTrusted(group.mint) ? this.trusted : undefined;
      let token: string | null = null;
      if (trx) {
        if (!trusted) await this.mint.issue(trx as unknown as MintTrx, this.unit, this.items(group.parts));
      } else {
        token = trusted ? await trusted.payout(group.mint, group.parts) : await this.ownToken(group.parts);
      }
      given.push({ mint: group.mint, amount: group.amount, token });
    }
    return given;
  }

  /**
   * PaymentRail.prepare: the parts owed at this node's own mint signed ahead on its curve threads
   * (NodePayments.presign), so that giveBack(parts, trx) finds them signed; a trusted mint's parts
   * are swaps made when shown, nothing to prepare.
   */
  async prepare(parts: readonly OwedPart[]): Promise<void> {
    for (const group of byMint(parts, (source) => this.payoutSource(source))) {
      if (this.trusted && this.isTrusted(group.mint)) continue;
      await this.mint.presign(this.unit, this.items(group.parts));
    }
  }

  /** The one name of the mint a payment source (a mint URL, as stored) is. */
  private payoutSource(source: string): string {
    return this.trusted && this.isTrusted(source) ? this.trusted.urlOf(source) : this.mintUrl;
  }

  /** The own mint's token of parts booked earlier: the same proofs on every call. */
  private async ownToken(parts: readonly PayoutPart[]): Promise<string | null> {
    const items = this.items(parts);
    if (items.length === 0) return null;
    const proofs = await this.mint.issued(items);
    return getEncodedToken({
      mint: this.mintUrl,
      unit: this.unit,
      proofs: proofs.map((p) => ({ ...p, amount: CashuAmount.from(p.amount) })),
    });
  }

  /**
   * Whether a payout source is a trusted mint. Anything else is this node's own mint, also under
   * an address it had before (its port or public URL may change between runs). A mint removed
   * from the trusted list is no longer told apart: refunds booked after that are this node's
   * ecash, and change of its payments can no longer be shown again.
   */
  private isTrusted(source: string): boolean {
    return this.trusted?.has(source) === true && normalizeMintUrl(source) !== normalizeMintUrl(this.mintUrl);
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

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function reject(code: Rejection['code'], message: string): Rejection {
  return { ok: false, code, message };
}
