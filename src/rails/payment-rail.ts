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
  /** Where the money is held (Cashu: the mint URL), and so where change and refunds come from (giveBack). */
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

/** The change of a redeemed payment, as owed back where it was paid (booked by `redeem`). */
export function changeOf(redeemed: Redeemed): OwedPart {
  return { purpose: 'change', subject: redeemed.key, amount: redeemed.change, source: redeemed.source };
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
 * amount taken, change) or a Rejection. Money goes back out by one call too, `giveBack`. Every
 * amount crossing the port is an `Amount`.
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
  /**
   * The one call out: money the node owes a payer, as tokens of the mints it was paid at (Cashu;
   * L402-paid money comes back as the node's own mint's ecash). Answers one GivenBack per mint, in
   * the order the parts first name them (a mint known under several addresses is one mint); parts
   * that add up to nothing at a mint give nothing there.
   *
   * - `parts` owed (change of a payment, a lease's refund): with `trx` — the store transaction that
   *   makes them owed (the one ending the lease; `redeem` does this for change itself) — they are
   *   booked there, once, and no token is shown yet (`token` null). Without `trx` the tokens of
   *   parts booked earlier are shown, the same on every call (derived again, never stored), so a
   *   replay shows them again.
   * - an `unused` payment (taken, but what it was for ended meanwhile): handed back whole, booked
   *   once on the first call, the same token on every call; no entry when none of it was taken
   *   (the payer's token is untouched). Never with `trx`.
   *
   * Throws AlacarteError `mint_unavailable` when a mint cannot be reached to make the token (retry).
   */
  giveBack(owed: Owed, trx?: Database): Promise<GivenBack[]>;
}

/** One thing owed back, as the rail derives its token: the same part always gives the same ecash. */
export interface PayoutPart {
  purpose: 'change' | 'refund';
  /** The payment key (change) or lease id (refund) the part belongs to. */
  subject: string;
  amount: Amount;
}

/** A part owed back, and where the money it comes from was paid (a payment's `source`, as stored). */
export interface OwedPart extends PayoutPart {
  source: string;
}

/** What `giveBack` is asked for. */
export type Owed =
  | { kind: 'parts'; parts: readonly OwedPart[] }
  | { kind: 'unused'; payment: InspectedPayment; price: Amount };

/** What one mint gives back. */
export interface GivenBack {
  /** The mint the token is of, by the one name the node knows it by. */
  mint: string;
  /** What is given back at this mint (the parts' sum; a returned payment: what its token is worth). */
  amount: Amount;
  /** A Cashu token of `mint`; null when booked in a transaction (not shown yet) or fees left nothing. */
  token: string | null;
}

/**
 * Parts grouped by mint (`mintOf` names the mint of a payment source), in the order the parts first
 * name each mint, parts of the same purpose and subject added up (a lease's refund drawn from two
 * payments at one mint is one refund there), and mints whose parts add up to nothing left out.
 */
export function byMint(
  parts: readonly OwedPart[],
  mintOf: (source: string) => string,
): Array<{ mint: string; parts: PayoutPart[]; amount: Amount }> {
  const groups = new Map<string, Map<string, PayoutPart>>();
  for (const part of parts) {
    const mint = mintOf(part.source);
    const group = groups.get(mint) ?? new Map<string, PayoutPart>();
    groups.set(mint, group);
    const id = `${part.purpose}/${part.subject}`;
    const earlier = group.get(id);
    group.set(id, {
      purpose: part.purpose,
      subject: part.subject,
      amount: earlier ? earlier.amount.add(part.amount) : part.amount,
    });
  }
  const out: Array<{ mint: string; parts: PayoutPart[]; amount: Amount }> = [];
  for (const [mint, group] of groups) {
    const merged = [...group.values()].filter((p) => !p.amount.isZero());
    const first = merged[0];
    if (!first) continue;
    const amount = merged.slice(1).reduce((sum, p) => sum.add(p.amount), first.amount);
    out.push({ mint, parts: merged, amount });
  }
  return out;
}
