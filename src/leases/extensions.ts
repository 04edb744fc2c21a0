import type { Amount } from '../core/amount.js';
import { AlacarteError } from '../core/errors.js';
import { type LeaseId, parseLeaseId } from '../core/ids.js';
import * as lifecycle from '../core/lease.js';
import type {
  InspectedPayment,
  PaymentHeaders,
  PaymentRail,
  PaymentRequest,
  PaymentSubject,
  Redeemed,
} from '../rails/payment-rail.js';
import type { Database } from '../store/database.js';
import { isPostgres } from '../store/dialect.js';
import type { Answer } from './answer.js';
import type { DeadlineNotices } from './deadline-notices.js';
import { IdempotencyKey } from './idempotency-keys.js';
import type { InFlight } from './in-flight.js';
import { checkEnough, type LeasePayments } from './lease-payments.js';
import { type LeaseRow, leaseFromRow } from './lease-record.js';
import type { Reconciler } from './reconciler.js';
import type { Refunds } from './refunds.js';
import { Replayed, type Replays } from './replays.js';
import { requireDeadlineAllowed, requireRunning } from './request-checks.js';

export interface ExtensionsOptions {
  db: Database;
  rail: PaymentRail;
  clock: () => Date;
  /** The service's requests in flight: one payment is handled once at a time. */
  inFlight: InFlight<Answer>;
  payments: LeasePayments;
  replays: Replays;
  refunds: Refunds;
  /** The service's reconciler (read late: it is made after this). */
  reconciler: () => Reconciler;
  deadlineNotices: DeadlineNotices;
  /** Whether a lease's sandbox still runs (the driver's, cheap). */
  sandboxRunning: (row: LeaseRow) => Promise<boolean>;
  /** The price of `seconds` more of an offer (the lease's own offer, as sold). */
  price: (offer: lifecycle.Lease['offer'], seconds: number) => Amount;
}

/**
 * Paid extensions of a running lease (POST /v1/leases/{id}/extend): anyone who knows the id may
 * pay; the deadline moves in the transaction that takes the money; a payment that a mint took
 * while the lease was ending goes back to its payer (Refunds.bounced), the same on every retry.
 */
export class Extensions {
  private readonly db: Database;
  private readonly rail: PaymentRail;
  private readonly now: () => Date;
  private readonly inFlight: InFlight<Answer>;
  private readonly payments: LeasePayments;
  private readonly replays: Replays;
  private readonly refunds: Refunds;
  private readonly reconciler: () => Reconciler;
  private readonly deadlineNotices: DeadlineNotices;
  private readonly sandboxRunning: (row: LeaseRow) => Promise<boolean>;
  private readonly price: ExtensionsOptions['price'];

  constructor(options: ExtensionsOptions) {
    this.db = options.db;
    this.rail = options.rail;
    this.now = options.clock;
    this.inFlight = options.inFlight;
    this.payments = options.payments;
    this.replays = options.replays;
    this.refunds = options.refunds;
    this.reconciler = options.reconciler;
    this.deadlineNotices = options.deadlineNotices;
    this.sandboxRunning = options.sandboxRunning;
    this.price = options.price;
  }

  /**
   * POST /v1/leases/{id}/extend; `client` and `idempotencyKey` as for LeaseService.create (the key
   * bound to the payment it first came with: the same key with another payment or none is
   * `idempotency_conflict`, that payment untouched).
   */
  async extend(
    id: string,
    seconds: number,
    headers: PaymentHeaders,
    client?: string,
    idempotencyKey?: string,
  ): Promise<Answer> {
    const leaseId = parseLeaseId(id);
    const row =
      leaseId &&
      (await this.db.selectFrom('leases').selectAll().where('id', '=', leaseId).executeTakeFirst());
    if (!row) throw new AlacarteError('not_found', 'no such lease');
    const lease = leaseFromRow(row);
    const price = this.price(lease.offer, seconds);
    const subject: PaymentSubject = { kind: 'extend', leaseId: row.id, seconds };
    const idem = IdempotencyKey.of(idempotencyKey, this.inFlight, this.replays);
    /** The payment as the rail read it, once admitted. */
    let seen: InspectedPayment | undefined;
    /** The payment's key held in flight until the request is answered. */
    const held: Array<() => void> = [];
    let newDeadline: Date | undefined;
    try {
      const request: PaymentRequest = {
        headers,
        subject,
        // Before any money moves: a replay gets its answer, a lease that cannot be extended 409.
        admit: async (payment) => {
          seen = payment;
          held.push(await IdempotencyKey.hold(this.inFlight, payment.key, idem));
          await this.admit(row.id, payment, price, seconds);
          await idem?.recheck(payment.key);
        },
        record: async (trx, taken) => {
          newDeadline = await this.record(trx, row.id, taken, seconds, idem?.hash ?? null);
        },
      };
      const outcome = await (idem
        ? idem.redeem(this.rail, request, price)
        : this.rail.redeem(request, price)
      ).catch(async (err: unknown) => {
        if (!(err instanceof LeaseEnded) || !seen) throw err;
        // Whatever a mint took for this payment goes back to the payer (nothing, at this node's
        // own mint: the transaction that spent the proofs rolled back).
        const ended = new AlacarteError('lease_not_running', 'the lease has ended');
        throw await this.refunds.bounced(seen, price, row.id, ended);
      });
      if (!outcome.ok) {
        // A key bound to another payment is refused (409) before the missing or refused payment
        // is answered (an admitted payment's key was checked there).
        if (idem && !seen) await idem.refuseUnpaid();
        // No payment offered for a lease that has ended: 409, not a challenge (an invoice made for
        // an extension nobody can buy).
        if (outcome.absent) requireRunning(row, this.now());
        throw await this.payments.refused(outcome, price, subject, client, seen);
      }
      this.payments.accepted(outcome);
      // The sandbox's deadline follows the store's; should the write fail, the replay answers
      // rate_limited (retry) and the reconciler retries it (README.md in this directory).
      if (newDeadline) {
        await this.reconciler().syncDeadline(row.id as LeaseId);
        this.deadlineNotices.deadlineChanged(row.id, newDeadline);
      }
      const answer = await this.replays.ofExtension(row.id, outcome.key, seconds);
      if (!answer) throw new Error(`extension of ${row.id} vanished after payment`);
      return answer;
    } catch (err) {
      if (err instanceof Replayed) return err.answer;
      // A paid L402 invoice that can never buy this extension goes back to its payer.
      if (seen && err instanceof AlacarteError) throw await this.refunds.returned(seen, price, err);
      throw err;
    } finally {
      for (const release of held) release();
    }
  }

  /**
   * The checks of an extension's payment, before any money moves: its replay answers (thrown as
   * Replayed); a lease that is not running refuses it (a payment a mint took while the lease was
   * ending goes back again); the new deadline must be allowed, the payment enough, the sandbox
   * alive.
   */
  private async admit(
    leaseId: string,
    payment: InspectedPayment,
    price: Amount,
    seconds: number,
  ): Promise<void> {
    const replay = await this.replays.ofExtension(leaseId, payment.key, seconds);
    if (replay) throw new Replayed(replay);
    const current = await this.db
      .selectFrom('leases')
      .selectAll()
      .where('id', '=', leaseId)
      .executeTakeFirstOrThrow();
    try {
      requireRunning(current, this.now());
    } catch (err) {
      // A retry of a payment a mint took while the lease was ending gets it back again.
      if (err instanceof AlacarteError) throw await this.refunds.bounced(payment, price, leaseId, err);
      throw err;
    }
    requireDeadlineAllowed(new Date(Math.max(Number(current.expires_at), this.now().getTime())), seconds);
    checkEnough(payment, price);
    await this.requireSandbox(current);
  }

  /**
   * Records a taken extension in the transaction that took it: the deadline moved, the held sum
   * grown, the payment row. Throws LeaseEnded when the lease ended meanwhile (the transaction, and
   * with it any spend at this node's mint, rolls back). Returns the new deadline.
   */
  private async record(
    trx: Database,
    leaseId: string,
    taken: Redeemed,
    seconds: number,
    idemHash: string | null,
  ): Promise<Date> {
    const fresh = await trx
      .selectFrom('leases')
      .selectAll()
      .where('id', '=', leaseId)
      // Locked until commit on PostgreSQL (SQLite has one writer at a time already): a stop
      // or the reaper ending the lease now waits, then finds the new deadline and held sum,
      // instead of booking a refund this extension's payment is missing from.
      .$if(isPostgres(trx), (q) => q.forUpdate())
      .executeTakeFirstOrThrow();
    // Checked again inside the transaction: the reaper or a stop may have won the race, or the
    // deadline passed since the checks (the reaper not there yet). Paid time never restarts from
    // "now" after a gap: the sandbox's own init ends it at its deadline.
    if (fresh.state !== 'running' || Number(fresh.expires_at) <= this.now().getTime()) throw new LeaseEnded();
    const state = lifecycle.extend(leaseFromRow(fresh).state, this.now(), seconds);
    if (state.kind !== 'running') throw new Error('extension left the running state');
    await trx
      .updateTable('leases')
      .set({
        expires_at: state.expiresAt.getTime(),
        held: Number(fresh.held) + taken.taken.toNumber(),
      })
      .where('id', '=', leaseId)
      .execute();
    const paid = this.payments.row(taken, leaseId, 'extend', seconds, idemHash);
    await trx.insertInto('payments').values(paid).execute();
    return state.expiresAt;
  }

  /**
   * A lease whose sandbox died under a running node (killed from outside, host trouble) is ended
   * here with its unused time refunded, before anyone pays to extend it: the payer gets 409 with
   * the token untouched rather than an extension of nothing. (The reconciler's watch ends it within
   * a second anyway; this closes the gap.) Throws 503 `replica_unavailable` when another replica
   * holds the sandbox and is down.
   */
  private async requireSandbox(row: LeaseRow): Promise<void> {
    // Another replica's sandbox: that replica must be up to take the new deadline.
    await this.reconciler().requireHolder(row);
    if (await this.sandboxRunning(row)) return;
    await this.reconciler().endVanished(row.id);
    throw new AlacarteError('lease_not_running', 'the sandbox has ended');
  }
}

/** The lease ended between the checks and the transaction that would have extended it. */
class LeaseEnded extends Error {}
