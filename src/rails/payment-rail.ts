import { Amount } from '../core/amount.js';
import type { ErrorCode } from '../core/errors.js';
import type { PaymentKey } from '../core/ids.js';
import { settle } from '../core/input-fees.js';
import type { Database } from '../store/database.js';

/** The request headers a rail reads its payment from (lower-case names). */
export type PaymentHeaders = Readonly<Record<string, string | string[] | undefined>>;

/**
 * A payment a rail has read and checked without moving any money: what `PaymentRequest.admit`
 * is shown, and what `giveBack({kind: 'unused'})` takes back should its record fail.
 */
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
  /**
   * Paid before the request arrived (L402: a settled invoice), so a refusal the payer cannot cure
   * with the same payment (too little after a price change, an expired credential) hands it back
   * through `giveBack({kind: 'unused'})`. Unset where a refusal takes nothing (Cashu).
   */
  prepaid?: true;
}

/**
 * A payment refused, with no money taken (ARCHITECTURE.md: a rejection never consumes money).
 * `absent`: the request carries no payment for this rail at all (code `payment_required`): the
 * caller answers with the 402 challenge, or asks the next rail.
 */
export type Rejection = {
  ok: false;
  code: ErrorCode;
  message: string;
  absent?: true;
  /** When to try again (`Retry-After`), for a refusal that is only about now (`no_capacity`). */
  retryAfterSeconds?: number;
};

/** The rejection of a request that carries no payment for a rail. */
export const NO_PAYMENT: Rejection = Object.freeze({
  ok: false,
  code: 'payment_required',
  message: 'the request carries no payment',
  absent: true,
} as const);

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
 * Records what a payment bought, in the store transaction that takes the money (`trx`).
 *
 * Why a transaction still crosses the port: at this node's own mint, taking the money *is*
 * inserting the proofs' Y points into the store the lease lives in. Recorded in that same
 * transaction, "spent" and "bought a lease" are one fact: a record that fails (the lease ended
 * while the payment was on its way, another replica bound the Idempotency-Key first) rolls the
 * spend back and the payer's token still pays — no money taken for a rejection, nothing to hand
 * back, nothing to recover after a crash. Were the rail to commit the spend on its own and the
 * caller claim it afterwards, each of those cases would become "taken, then returned" and every
 * crash between the two commits a payment to find and pay back later. Rails whose money moves
 * outside the store (a swap at a trusted mint, a paid Lightning invoice) open the transaction
 * themselves, record their claim in it (so the payment is taken once) and hand back a payment
 * whose record failed through `giveBack({kind: 'unused'})`.
 */
export type RecordPayment = (trx: Database, redeemed: Redeemed) => Promise<void>;

/**
 * A request's payment as `redeem` takes it: where it is (`headers`), what it pays for
 * (`subject`), the caller's check once the payment is known (`admit`) and its record (`record`).
 */
export interface PaymentRequest {
  /** The request's headers (lower-case names): X-Cashu, Authorization: L402 … */
  headers: PaymentHeaders;
  /** What the payment is for; a rail whose credential is bound to it (L402) checks it. */
  subject: PaymentSubject;
  /**
   * Called once the payment is read and checked (its idempotency key known, its value and fee
   * read) and before any money moves, outside any store transaction. Here the caller recognises a
   * replay (the same key paid before: it answers that again) and refuses what it cannot sell
   * (lease ended, too little): it throws, `redeem` throws the same, and nothing is taken. The
   * object it receives is the payment `giveBack({kind: 'unused'})` takes.
   */
  admit?: (payment: InspectedPayment) => Promise<void>;
  /** Run once, in the transaction that takes the money; throwing takes nothing (see RecordPayment). */
  record: RecordPayment;
}

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
 * One way to pay (ARCHITECTURE.md, port PaymentRail): one call in, one call out, every amount an
 * `Amount`.
 *
 * In: `redeem(request, price)` reads the request's payment, lets the caller `admit` it by its
 * idempotency key before any money moves (a replay is recognised there and answered again, never
 * paid twice), then takes at most `price` (plus the issuer's fee) of it, books the change and runs
 * `record` in the same store transaction: a payment is fully recorded with what it bought, or not
 * taken at all. It answers Redeemed (the key, the amount taken, the change) or a Rejection, which
 * never consumes money. The same payment presented again is recognised by its key in `admit`;
 * should a caller still let it through, it is refused (`token_spent`) or its record is (the
 * payment key is unique where it is recorded) — never taken twice.
 *
 * Out: `giveBack(owed)`.
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
   * Takes the request's payment for `price` (see the interface). Rejections: `absent` (no payment
   * for this rail in the request), `invalid_token`, `mint_not_accepted`, `unit_mismatch`,
   * `insufficient_amount`, `token_spent`, `payload_too_large`, `l402_invalid`,
   * `idempotency_conflict` (a credential bound to another subject), `payment_required` (an L402
   * invoice not paid). Throws what `admit` or `record` throw (nothing taken, or — money moved
   * outside the store — handed back by `giveBack({kind: 'unused'})`), and AlacarteError
   * `mint_unavailable` when a mint or the Lightning backend cannot be asked.
   */
  redeem(request: PaymentRequest, price: Amount): Promise<Redeemed | Rejection>;
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
  /**
   * Optional: the slow part of booking `parts` (Cashu at the own mint: signing them, on the mint's
   * curve threads) done ahead, outside any store transaction, so that `giveBack(parts, trx)` moments
   * later holds its transaction for less. Books and owes nothing: parts prepared and never booked
   * are forgotten, and parts booked without it are prepared there as before. Rejects only on an
   * unexpected failure, which the caller may ignore.
   */
  prepare?(parts: readonly OwedPart[]): Promise<void>;
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
