import { Amount } from '../core/amount.js';
import type { ErrorCode } from '../core/errors.js';
import type { PaymentKey } from '../core/ids.js';
import { settle } from '../core/input-fees.js';
import type { Database } from '../store/database.js';

/** The request headers a rail reads its payment from (lower-case names). */
export type PaymentHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** A payment read and checked without moving any money. */
export interface InspectedPayment {
  rail: string;
  /** Same payment, same key: the idempotency key of ARCHITECTURE.md. */
  key: PaymentKey;
  /** Total value presented. */
  amount: Amount;
  /** Fees the rail's issuer charges to take it (Cashu: input fees). */
  fee: Amount;
  /**
   * How many inputs (Cashu: proofs) the payment holds, when its fee goes to someone else (a trusted
   * mint): it bounds the fee the node bears (core/input-fees.ts). Unset at the node's own mint,
   * whose fee is the operator's own revenue.
   */
  inputs?: number;
  /** Where the money comes from (Cashu: the mint URL). */
  source: string;
}

export type Rejection = { ok: false; code: ErrorCode; message: string };

/**
 * A payment taken (ARCHITECTURE.md: Redeemed): its idempotency key, what was presented, what the
 * node keeps for time (the price, less any fee the node bore), the change owed to the payer and
 * the issuer's fee, all in the price's unit.
 */
export interface Redeemed {
  ok: true;
  rail: string;
  key: PaymentKey;
  /** Where the money is held, and what change and refunds are paid from (payoutSource). */
  source: string;
  /** Total value presented. */
  amount: Amount;
  /** Kept for time: held by the lease, charged or refunded from there. */
  taken: Amount;
  /** Owed back to the payer now, booked by the rail in the same transaction. */
  change: Amount;
  /** The issuer's fee for taking it (Cashu: input fees). */
  fee: Amount;
}

/**
 * How a payment worth at least `price` splits (core/input-fees.ts), or undefined when it does not
 * pay (too little, or fees beyond what the node bears).
 */
export function redeemedOf(payment: InspectedPayment, price: Amount): Redeemed | undefined {
  const split = settle(payment.amount.value, payment.fee.value, price.value, payment.inputs);
  if (!split || payment.amount.unit !== price.unit) return undefined;
  return {
    ok: true,
    rail: payment.rail,
    key: payment.key,
    source: payment.source,
    amount: payment.amount,
    taken: Amount.of(split.keep, price.unit),
    change: Amount.of(split.change, price.unit),
    fee: payment.fee,
  };
}

/** The change of a redeemed payment as the part its payout books and derives. */
export function changeOf(redeemed: Redeemed): PayoutPart {
  return { purpose: 'change', subject: redeemed.key, amount: redeemed.change };
}

/**
 * Records what a payment bought, in the store transaction that takes the money. The one store
 * handle that crosses the port: at this node's own mint taking the money is inserting the proofs'
 * Y points, and only the same transaction makes "spent" and "recorded" one fact.
 */
export type RecordPayment = (trx: Database, redeemed: Redeemed) => Promise<void>;

/**
 * What a payment is for: a new lease (its offer, seconds and image) or the extension of one. A
 * rail whose credential is issued per request (L402) binds it to this; Cashu ignores it.
 */
export type PaymentSubject =
  | { kind: 'create'; offer: string; seconds: number; image: string }
  | { kind: 'extend'; leaseId: string; seconds: number };

export interface Challenge {
  /** How to pay, for the 402's message, e.g. "pay in the X-Cashu header". */
  instructions: string;
  /** Header values; a name may carry several challenges (WWW-Authenticate: L402 and LSAT). */
  headers: Record<string, string | string[]>;
  body: Record<string, unknown>;
}

/**
 * One way to pay (ARCHITECTURE.md, port PaymentRail). A rejection never consumes money; `redeem`
 * takes the money, books its change and runs `record` in the same store transaction, so a payment
 * is either fully recorded with what it bought or not taken at all; it answers Redeemed (key,
 * amount taken, change) or a Rejection.
 */
export interface PaymentRail {
  readonly id: string;
  /**
   * The 402's headers and body fields asking for `price` for `subject`. `client` names who asks (its
   * address; an IPv6 one by its /64), for a rail that bounds the work an unpaid request costs it
   * (L402: an invoice); it is never stored or logged.
   */
  challenge(price: Amount, subject: PaymentSubject, client?: string): Promise<Challenge>;
  /**
   * undefined when the request carries no payment for this rail. A payment bound to another
   * subject is an `idempotency_conflict` rejection.
   */
  inspect(
    headers: PaymentHeaders,
    subject: PaymentSubject,
  ): Promise<{ ok: true; payment: InspectedPayment } | Rejection | undefined>;
  redeem(payment: InspectedPayment, price: Amount, record: RecordPayment): Promise<Redeemed | Rejection>;
  /** Books a payout (change, refund) as issued, inside the caller's transaction; `payout` shows it. */
  book(trx: Database, source: string, parts: readonly PayoutPart[]): Promise<void>;
  /**
   * The source payouts of a stored payment source come from now, one name per mint: a mint known
   * under several addresses (this node's own, after its port or public URL changed) gets one name,
   * so a lease's refund is split per mint, never twice over the same one.
   */
  payoutSource(source: string): string;
  /**
   * Hands back a payment that was taken but bought nothing (the lease it was to extend ended while
   * it was being redeemed, or before a retry of it): the same token again on every call. null when
   * none of it was taken (nothing to give back: the payer's token is untouched). `amount` is what
   * the token is worth (the issuer's fees for taking and returning it are off).
   */
  giveBack(
    payment: InspectedPayment,
    price: Amount,
  ): Promise<{ token: string | null; amount: Amount } | null>;
  /**
   * One token for the payer holding every part (change of a payment, refund of a lease), derived
   * again identically on every call with the same parts, so a replay shows it without the store
   * keeping it. null when the parts add up to nothing.
   */
  payout(source: string, parts: readonly PayoutPart[]): Promise<string | null>;
}

export interface PayoutPart {
  purpose: 'change' | 'refund';
  /** The payment key (change) or lease id (refund) the part belongs to. */
  subject: string;
  amount: Amount;
}
