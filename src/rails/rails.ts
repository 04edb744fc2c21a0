import type { Amount } from '../core/amount.js';
import type { Logger } from '../log.js';
import type { Database } from '../store/database.js';
import type {
  Challenge,
  GivenBack,
  InspectedPayment,
  Owed,
  OwedPart,
  PaymentRail,
  PaymentRequest,
  PaymentSubject,
  Redeemed,
  Rejection,
} from './payment-rail.js';
import { NO_PAYMENT } from './payment-rail.js';

/**
 * Several rails as one: a 402 offers every rail's way to pay (their headers and body fields side
 * by side), a payment goes to the first rail that finds one in the request, and handing it back
 * unused goes to the rail that read it. Change and refunds go to `payouts`, the
 * rail whose tokens pay everyone back (Cashu).
 */
export class Rails implements PaymentRail {
  readonly id: string;
  private readonly rails: readonly PaymentRail[];
  private readonly payouts: PaymentRail;
  private readonly log: Logger | undefined;

  constructor(options: { rails: readonly PaymentRail[]; payouts: PaymentRail; logger?: Logger }) {
    this.rails = options.rails;
    this.payouts = options.payouts;
    this.log = options.logger;
    this.id = this.rails.map((r) => r.id).join('+');
  }

  /** Every rail's challenge; a rail that cannot make one now (its Lightning is down) is left out. */
  async challenge(price: Amount, subject: PaymentSubject, client?: string): Promise<Challenge> {
    const merged: Challenge = { instructions: '', headers: {}, body: {} };
    const outcomes = await Promise.allSettled(this.rails.map((r) => r.challenge(price, subject, client)));
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.status === 'rejected') {
        this.log?.warn(
          { rail: this.rails[i]?.id, err: String((outcome.reason as Error)?.stack ?? outcome.reason) },
          'no challenge from a rail',
        );
        continue;
      }
      const c = outcome.value;
      if (c.instructions)
        merged.instructions = [merged.instructions, c.instructions].filter(Boolean).join(' ');
      Object.assign(merged.headers, c.headers);
      Object.assign(merged.body, c.body);
    }
    if (Object.keys(merged.headers).length === 0) throw new Error('no payment rail could make a challenge');
    return merged;
  }

  /**
   * The first rail that finds a payment in the request redeems it; `absent` when none does. A
   * rail refusing a payment it found answers for the request: no other rail is asked.
   */
  async redeem(request: PaymentRequest, price: Amount): Promise<Redeemed | Rejection> {
    for (const rail of this.rails) {
      const outcome = await rail.redeem(request, price);
      if (outcome.ok || !outcome.absent) return outcome;
    }
    return NO_PAYMENT;
  }

  /** Payouts go to `payouts`; an unused payment goes back through the rail that read it. */
  giveBack(owed: Owed, trx?: Database): Promise<GivenBack[]> {
    return owed.kind === 'unused'
      ? this.railOf(owed.payment).giveBack(owed, trx)
      : this.payouts.giveBack(owed, trx);
  }

  /** PaymentRail.prepare: parts owed are booked by `payouts`, so prepared there. */
  async prepare(parts: readonly OwedPart[]): Promise<void> {
    await this.payouts.prepare?.(parts);
  }

  private railOf(payment: InspectedPayment): PaymentRail {
    const rail = this.rails.find((r) => r.id === payment.rail);
    if (!rail) throw new Error(`no rail ${payment.rail}`);
    return rail;
  }
}
