import { Amount } from '../core/amount.js';
import { AlacarteError } from '../core/errors.js';
import type { GivenBack, InspectedPayment, OwedPart, PaymentRail } from '../rails/payment-rail.js';
import type { Database } from '../store/database.js';
import type { LeaseRow, PaymentRow } from './lease-record.js';

/** One refund token of the `refunds` array in an answer: the part paid back by one mint. */
export interface MintRefund {
  /** The mint that issued `token` (the token names it too). */
  mint: string;
  /** A Cashu token of that mint; null only when the mint's fees left nothing to give. */
  token: string | null;
  /** What is paid back from this mint, in the lease's unit. */
  amount: number;
}

/** The refund fields of an answer (DELETE, start_failed, a returned extension). */
export interface RefundFields {
  /** The first token of `refunds` (null when nothing is paid back): what older clients read. */
  refund: string | null;
  /** The total paid back, over every mint. */
  refunded: number;
  /** One token per mint, in the order the refund drew on the mints. */
  refunds: MintRefund[];
}

/** A payment of a lease as the split sees it: where it was paid and what the node kept of it. */
export interface KeptAt {
  source: string;
  kept: bigint;
}

/**
 * Splits a lease's refund over the mints its payments were kept at: newest payment first (the
 * unused time is the time bought last, so it goes back where that was paid), never more from a
 * mint than the node kept there. `payments` oldest first; the shares come in the order they were
 * drawn, one per mint. Throws when the refund exceeds everything kept (a broken invariant: a
 * refund is at most what was paid for time).
 */
export function splitRefund(
  payments: readonly KeptAt[],
  refund: bigint,
): Array<{ source: string; amount: bigint }> {
  const shares = new Map<string, bigint>();
  let owed = refund;
  for (let i = payments.length - 1; i >= 0 && owed > 0n; i--) {
    const p = payments[i] as KeptAt;
    if (p.kept <= 0n) continue;
    // bigint: no Math.min.
    let take = owed;
    if (p.kept < take) take = p.kept;
    shares.set(p.source, (shares.get(p.source) ?? 0n) + take);
    owed -= take;
  }
  if (owed > 0n) throw new Error(`a refund of ${refund} exceeds what the lease's payments kept`);
  return [...shares].map(([source, amount]) => ({ source, amount }));
}

/**
 * Refunds paid from the mints that were paid, each through the rail's one call out
 * (PaymentRail.giveBack). `book` splits an ended lease's refund over its payments (splitRefund)
 * and books it inside the lease's own transaction, one share per mint; `show` has the tokens
 * derived again on every call, so the store never holds one. `bounced` hands back a payment a
 * mint took for an extension of a lease that had ended, the same token on every retry.
 */
export class Refunds {
  private readonly db: Database;
  private readonly rail: PaymentRail;
  private readonly now: () => Date;

  constructor(options: { db: Database; rail: PaymentRail; clock: () => Date }) {
    this.db = options.db;
    this.rail = options.rail;
    this.now = options.clock;
  }

  /** Books `refund` of lease `leaseId` per mint, in the caller's transaction (the one ending it). */
  async book(trx: Database, leaseId: string, refund: Amount): Promise<void> {
    if (refund.isZero()) return;
    const shares = await this.rail.giveBack(
      { kind: 'parts', parts: await this.refundParts(trx, leaseId, refund) },
      trx,
    );
    for (const [position, share] of shares.entries()) {
      await trx
        .insertInto('lease_refunds')
        .values({ lease_id: leaseId, mint_url: share.mint, position, amount: share.amount.toNumber() })
        .execute();
    }
  }

  /**
   * The slow part of booking `refund` of lease `leaseId` (signing it: PaymentRail.prepare) done
   * now, outside any transaction, so that book() moments later holds the store's transaction for
   * less. Books nothing; should the refund booked then differ (an extension committed meanwhile,
   * another second passed), book() signs what differs itself.
   */
  async prepare(leaseId: string, refund: Amount): Promise<void> {
    if (refund.isZero() || this.rail.prepare === undefined) return;
    await this.rail.prepare(await this.refundParts(this.db, leaseId, refund));
  }

  /** The refund's parts, drawn per payment source (splitRefund) as `db` shows the lease's payments. */
  private async refundParts(db: Database, leaseId: string, refund: Amount): Promise<OwedPart[]> {
    const payments = await db
      .selectFrom('payments')
      .select(['mint_url', 'kept'])
      .where('lease_id', '=', leaseId)
      .orderBy('seq')
      .execute();
    // Drawn per payment source; the rail adds up the draws on one mint (whatever address each
    // payment named it by) into that mint's share.
    const draws = splitRefund(
      payments.map((p) => ({ source: p.mint_url, kept: BigInt(p.kept) })),
      refund.value,
    );
    return draws.map((d) => refundPart(leaseId, Amount.of(d.amount, refund.unit), d.source));
  }

  /** The refund of an ended lease as its answer shows it, the same on every call. */
  async show(row: LeaseRow): Promise<RefundFields> {
    const parts = (await this.shares(row.id)).map((share) =>
      refundPart(row.id, Amount.of(share.amount, row.unit), share.mint_url),
    );
    const given = parts.length === 0 ? [] : await this.rail.giveBack({ kind: 'parts', parts });
    return fields(given.map(mintRefund), Number(row.refunded));
  }

  /**
   * Everything a failed start gives back: the change of the payment that bought the lease and the
   * refund, the create payment's mint first in one token (as it always was), any other mint after.
   */
  async showFailedStart(payment: PaymentRow, row: LeaseRow): Promise<RefundFields> {
    const change = Amount.of(BigInt(payment.change), row.unit);
    const parts: OwedPart[] = [
      // First: its mint comes first, with the refund drawn there in the same token.
      { purpose: 'change', subject: payment.key, amount: change, source: payment.mint_url },
      ...(await this.shares(row.id)).map((share) =>
        refundPart(row.id, Amount.of(share.amount, row.unit), share.mint_url),
      ),
    ];
    const given = await this.rail.giveBack({ kind: 'parts', parts });
    return fields(given.map(mintRefund), change.toNumber() + Number(row.refunded));
  }

  /**
   * The error a payment for lease `leaseId` gets when the lease is not running (`ended`): as it
   * is when none of the payment was taken (the payer's token is untouched); else with the payment
   * handed back (`refund`, `refunded`, `refunds`), recorded once in the ledger, and the same again
   * on every retry with the same token.
   */
  async bounced(
    payment: InspectedPayment,
    price: Amount,
    leaseId: string,
    ended: AlacarteError,
  ): Promise<AlacarteError> {
    const [back] = await this.rail.giveBack({ kind: 'unused', payment, price });
    if (!back) return ended;
    await this.db
      .insertInto('bounced_payments')
      .values({
        key: payment.key,
        lease_id: leaseId,
        mint_url: back.mint,
        amount: payment.amount.toNumber(),
        returned: back.amount.toNumber(),
        created_at: this.now().getTime(),
      })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    const refunds = back.amount.isZero() ? [] : [mintRefund(back)];
    return new AlacarteError(
      'lease_not_running',
      'the lease ended before this payment arrived; it is returned',
      {
        details: { ...fields(refunds, back.amount.toNumber()) },
        cause: ended,
      },
    );
  }

  /**
   * The error `refused` as a payment paid before the request arrived (`prepaid`: a settled L402
   * invoice) gets it when it can never buy what it was issued for with the same payment (RETURNED_ON:
   * too little after a price change, the credential expired): the payment handed back whole
   * (`refund`, `refunded`, `refunds` beside the error's own fields), booked once by the rail, the
   * same token on every retry. Unchanged for any other payment or error, and when nothing was paid.
   * `final`: the caller knows the refusal is for good whatever its code (the offer or image gone).
   */
  async returned(
    payment: InspectedPayment,
    price: Amount,
    refused: AlacarteError,
    final = RETURNED_ON.has(refused.code),
  ): Promise<AlacarteError> {
    if (!payment.prepaid || !final) return refused;
    const [back] = await this.rail.giveBack({ kind: 'unused', payment, price });
    if (!back) return refused;
    const refunds = back.amount.isZero() ? [] : [mintRefund(back)];
    return new AlacarteError(refused.code, `${refused.message}; the payment is returned as ecash`, {
      details: { ...refused.details, ...fields(refunds, back.amount.toNumber()) },
      headers: { ...refused.headers },
      cause: refused,
    });
  }

  private async shares(leaseId: string): Promise<Array<{ mint_url: string; amount: bigint }>> {
    const rows = await this.db
      .selectFrom('lease_refunds')
      .select(['mint_url', 'amount'])
      .where('lease_id', '=', leaseId)
      .orderBy('position')
      .execute();
    return rows.map((r) => ({ mint_url: r.mint_url, amount: BigInt(r.amount) }));
  }
}

/**
 * Refusals a prepaid payment cannot cure by being sent again: the price it was issued at is no
 * longer enough, its unit is not the node's, its credential expired (`payment_required` on a
 * payment that was read; an unpaid invoice gives nothing back), it was returned before
 * (`token_spent`). A full node (`no_capacity`) or a
 * request it was not issued for (`idempotency_conflict`) may still be cured: it stays paid.
 */
const RETURNED_ON: ReadonlySet<string> = new Set([
  'insufficient_amount',
  'unit_mismatch',
  'payment_required',
  // Claimed already: a payment returned earlier shows its token again (a lease's claim gives nothing).
  'token_spent',
]);

function refundPart(leaseId: string, amount: Amount, source: string): OwedPart {
  return { purpose: 'refund', subject: leaseId, amount, source };
}

/** A mint's share as the answer's `refunds` entry shows it (whole units). */
function mintRefund(given: GivenBack): MintRefund {
  return { mint: given.mint, token: given.token, amount: given.amount.toNumber() };
}

function fields(refunds: MintRefund[], refunded: number): RefundFields {
  // A mint whose fees left nothing has no token: `refund` is the first there is.
  return { refund: refunds.find((r) => r.token !== null)?.token ?? null, refunded, refunds };
}
