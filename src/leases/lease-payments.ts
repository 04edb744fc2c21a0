import type { Amount } from '../core/amount.js';
import { AlacarteError } from '../core/errors.js';
import { settle } from '../core/input-fees.js';
import type {
  InspectedPayment,
  PaymentRail,
  PaymentSubject,
  Redeemed,
  Rejection,
} from '../rails/payment-rail.js';
import type { NewPaymentRow } from './lease-record.js';
import type { LeaseEvent } from './lease-service.js';

/**
 * A lease's payments as the lease service sees them: the 402 that asks for one or the error a
 * rejection becomes, the outcome of redeeming it (counted for metrics), and the payments row that
 * records it.
 */
export class LeasePayments {
  private readonly rail: PaymentRail;
  private readonly now: () => Date;
  private readonly emit: (event: LeaseEvent) => void;

  constructor(options: { rail: PaymentRail; clock: () => Date; emit: (event: LeaseEvent) => void }) {
    this.rail = options.rail;
    this.now = options.clock;
    this.emit = options.emit;
  }

  /**
   * The error a rail's rejection becomes, as the client sees it: the 402 challenge when the
   * request carried no payment (`client` as for PaymentRail.challenge), else the rejection itself
   * — counted for metrics when the payment had been read (`payment`, as `admit` saw it).
   */
  async refused(
    rejection: Rejection,
    price: Amount,
    subject: PaymentSubject,
    client: string | undefined,
    payment?: InspectedPayment,
  ): Promise<AlacarteError> {
    if (rejection.absent) {
      const challenge = await this.rail.challenge(price, subject, client);
      return new AlacarteError('payment_required', `this costs ${price}; ${challenge.instructions}`, {
        details: challenge.body,
        headers: challenge.headers,
      });
    }
    if (payment) {
      const event = { type: 'payment', rail: payment.rail, amount: payment.amount } as const;
      this.emit({ ...event, outcome: 'rejected', code: rejection.code });
    }
    return new AlacarteError(
      rejection.code,
      rejection.message,
      rejection.retryAfterSeconds === undefined
        ? {}
        : { headers: { 'retry-after': String(rejection.retryAfterSeconds) } },
    );
  }

  /** Counts a payment taken. */
  accepted(redeemed: Redeemed): void {
    this.emit({ type: 'payment', rail: redeemed.rail, amount: redeemed.amount, outcome: 'accepted' });
  }

  /** Counts a payment answered again (a replay): nothing taken. */
  replayed(payment: InspectedPayment): void {
    this.emit({ type: 'payment', rail: payment.rail, amount: payment.amount, outcome: 'replayed' });
  }

  /** The payments row of a redeemed payment (amounts as whole units of its unit). */
  row(
    redeemed: Redeemed,
    leaseId: string,
    purpose: 'create' | 'extend',
    seconds: number,
    idemHash: string | null,
    requestHash: string | null = null,
  ): NewPaymentRow {
    return {
      key: redeemed.key,
      lease_id: leaseId,
      purpose,
      rail: redeemed.rail,
      mint_url: redeemed.source,
      amount: redeemed.amount.toNumber(),
      kept: redeemed.taken.toNumber(),
      change: redeemed.change.toNumber(),
      fee: redeemed.fee.toNumber(),
      seconds,
      idempotency_hash: idemHash,
      request_hash: requestHash,
      created_at: this.now().getTime(),
    };
  }
}

/**
 * A token worth the price is enough (NUT-24: at least the 402's amount, which is the price);
 * input fees come out of what it holds above the price, the node bears the rest
 * (core/input-fees.ts). Throws `unit_mismatch` or `insufficient_amount`.
 */
export function checkEnough(payment: InspectedPayment, price: Amount): void {
  if (payment.amount.unit !== price.unit) {
    throw new AlacarteError(
      'unit_mismatch',
      `this node prices in ${price.unit}, the token is in ${payment.amount.unit}`,
    );
  }
  if (!payment.amount.gte(price)) {
    throw new AlacarteError(
      'insufficient_amount',
      `the ${payment.rail === 'cashu' ? 'token' : 'payment'} is worth ${payment.amount} but this costs ${price}`,
      {
        details: { amount: price.toNumber(), unit: price.unit },
      },
    );
  }
  if (!settle(payment.amount.value, payment.fee.value, price.value, payment.inputs)) {
    throw new AlacarteError(
      'insufficient_amount',
      `the token's input fees (${payment.fee}) are more than a token of this price in its fewest proofs would cost; send fewer, larger proofs or add the fee`,
      { details: { amount: price.toNumber(), unit: price.unit } },
    );
  }
}
