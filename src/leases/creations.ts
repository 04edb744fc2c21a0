import { Amount } from '../core/amount.js';
import { AlacarteError } from '../core/errors.js';
import { type LeaseId, newLeaseId } from '../core/ids.js';
import { type Offer, offerToJson } from '../core/offers.js';
import type { ComputeDriver } from '../drivers/compute-driver.js';
import type { Logger } from '../log.js';
import type {
  InspectedPayment,
  PaymentHeaders,
  PaymentRail,
  PaymentRequest,
  PaymentSubject,
} from '../rails/payment-rail.js';
import type { Transact } from '../store/group-commit.js';
import type { Tables } from '../store/schema.js';
import type { Answer } from './answer.js';
import type { Catalog } from './catalog.js';
import type { ComputeTarget } from './compute-target.js';
import { IdempotencyKey } from './idempotency-keys.js';
import type { InFlight } from './in-flight.js';
import { checkEnough, type LeasePayments } from './lease-payments.js';
import { stateColumns } from './lease-record.js';
import type { CreateLeaseInput, LeaseEvent } from './lease-service.js';
import { credentialHash, type NodeSecret } from './node-secret.js';
import type { Reconciler } from './reconciler.js';
import type { Refunds } from './refunds.js';
import { Replayed, type Replays } from './replays.js';
import { requireDeadlineAllowed } from './request-checks.js';
import { RunningMarks } from './running-marks.js';

export interface CreationsOptions {
  /** The transactions of `running` marks (grouped: running-marks.ts). */
  marks: Transact<Tables>;
  driver: ComputeDriver;
  rail: PaymentRail;
  secret: NodeSecret;
  clock: () => Date;
  logger: Logger;
  emit: (event: LeaseEvent) => void;
  /** Where this replica's sandboxes are, recorded with each lease. */
  target: ComputeTarget;
  /** The offers on sale (the first one's unit prices a payment read only to be handed back). */
  offers: readonly Offer[];
  /** What is on sale: prices, images, capacity reserved before any money moves. */
  catalog: Catalog;
  /** The service's requests in flight: one payment is handled once at a time. */
  inFlight: InFlight<Answer>;
  payments: LeasePayments;
  replays: Replays;
  refunds: Refunds;
  /** The service's reconciler (read late: it is made after this). */
  reconciler: () => Reconciler;
}

/**
 * New leases (POST /v1/leases): admission before any money moves (replay, Idempotency-Key,
 * enough paid, capacity reserved), the payment and the `pending` lease in one transaction, then
 * the sandbox's start; a failed start fails the lease with everything refunded.
 */
export class Creations {
  private readonly driver: ComputeDriver;
  private readonly rail: PaymentRail;
  private readonly secret: NodeSecret;
  private readonly now: () => Date;
  private readonly log: Logger;
  private readonly emit: (event: LeaseEvent) => void;
  private readonly target: ComputeTarget;
  private readonly offers: readonly Offer[];
  private readonly price: Catalog['price'];
  private readonly imageList: Catalog['imageList'];
  private readonly reserve: Catalog['reserve'];
  private readonly inFlight: InFlight<Answer>;
  private readonly payments: LeasePayments;
  private readonly replays: Replays;
  private readonly refunds: Refunds;
  private readonly reconcilerOf: () => Reconciler;
  private readonly runningMarks: RunningMarks;

  constructor(options: CreationsOptions) {
    this.driver = options.driver;
    this.rail = options.rail;
    this.secret = options.secret;
    this.now = options.clock;
    this.log = options.logger;
    this.emit = options.emit;
    this.target = options.target;
    const catalog = options.catalog;
    this.offers = options.offers;
    this.price = (offer, seconds) => catalog.price(offer, seconds);
    this.imageList = () => catalog.imageList();
    this.reserve = (offer, leaseId) => catalog.reserve(offer, leaseId);
    this.inFlight = options.inFlight;
    this.payments = options.payments;
    this.replays = options.replays;
    this.refunds = options.refunds;
    this.reconcilerOf = options.reconciler;
    this.runningMarks = new RunningMarks(options.marks);
  }

  private get reconciler(): Reconciler {
    return this.reconcilerOf();
  }

  /**
   * POST /v1/leases. `client` names who asks (their address, an IPv6 one by its /64), for the
   * rails' bounds on what an unpaid 402 may cost (PaymentRail.challenge); never stored or logged.
   */
  async create(
    input: CreateLeaseInput,
    headers: PaymentHeaders,
    idempotencyKey?: string,
    client?: string,
  ): Promise<Answer> {
    const subject: PaymentSubject = {
      kind: 'create',
      offer: input.offer,
      seconds: input.seconds,
      image: input.image,
    };
    let quote: { offer: Offer; amount: Amount };
    try {
      quote = this.price(input.offer, input.seconds);
      if (!this.imageList().includes(input.image)) {
        throw new AlacarteError(
          'invalid_request',
          `unknown image '${input.image}'; see /v1/offers for images`,
        );
      }
      requireDeadlineAllowed(this.now(), input.seconds);
    } catch (err) {
      if (!(err instanceof AlacarteError)) throw err;
      throw await this.refusedUnsold(headers, subject, err);
    }
    const { offer, amount: price } = quote;
    const requestHash = this.replays.requestHash(input);
    const idem = IdempotencyKey.of(idempotencyKey, this.inFlight, this.replays);
    const id = newLeaseId();
    const createdAt = this.now();
    /** The payment as the rail read it, once admitted. */
    let seen: InspectedPayment | undefined;
    /** What admit holds until the request is answered: its keys in flight, the capacity reserved. */
    const held: Array<() => void> = [];
    try {
      const request: PaymentRequest = {
        headers,
        subject,
        // Before any money moves: the payment's key decides whether this is a replay.
        admit: async (payment) => {
          seen = payment;
          held.push(await IdempotencyKey.hold(this.inFlight, payment.key, idem));
          const replay = await this.replays.ofCreate(payment.key, requestHash);
          if (replay) {
            this.payments.replayed(payment);
            throw new Replayed(replay);
          }
          await idem?.recheck(payment.key);
          checkEnough(payment, price);
          held.push(await this.reserve(offer, id));
        },
        record: async (trx, taken) => {
          await trx
            .insertInto('leases')
            .values({
              id,
              offer_id: offer.id,
              offer_json: JSON.stringify(offerToJson(offer)),
              image: input.image,
              ...stateColumns({ kind: 'pending' }),
              created_at: createdAt.getTime(),
              held: taken.taken.toNumber(),
              unit: price.unit,
              credential_hash: credentialHash(this.secret.credentialFor(id)),
              ports_json: '{}',
              ssh_keys_json: JSON.stringify((input.ssh_keys ?? []).map((k) => k.trim())),
              target: this.target.id,
              replica: this.target.replica,
            })
            .execute();
          const paid = this.payments.row(taken, id, 'create', input.seconds, idem?.hash ?? null, requestHash);
          await trx.insertInto('payments').values(paid).execute();
        },
      };
      const outcome = idem
        ? await idem.redeem(this.rail, request, price)
        : await this.rail.redeem(request, price);
      if (!outcome.ok) {
        // A key bound to another payment is refused (409) before the missing or refused payment
        // is answered with a 402 or the rejection (an admitted payment's key was checked there).
        if (idem && !seen) await idem.refuseUnpaid();
        // No payment asked for a lease that could not start now (an egress offer on a driver
        // without network, a full node): 503 rather than a 402 whose payment would only be
        // refused, or, for an invoice paid ahead (L402), handed back as ecash.
        if (outcome.absent) (await this.reserve(offer))();
        throw await this.payments.refused(outcome, price, subject, client, seen);
      }
      this.payments.accepted(outcome);
      await this.startSandbox(id, input, offer);
      const answer = await this.replays.ofCreate(outcome.key, requestHash);
      if (!answer) throw new Error(`lease ${id} vanished after payment`);
      return { ...answer, status: answer.status === 200 ? 201 : answer.status };
    } catch (err) {
      if (err instanceof Replayed) return err.answer;
      // A payment made before the request (a paid L402 invoice) that can never buy this lease
      // goes back to its payer with the refusal (the money rule: a lease or a refund).
      if (seen && err instanceof AlacarteError) throw await this.refunds.returned(seen, price, err);
      throw err;
    } finally {
      for (const release of held.reverse()) release();
    }
  }

  /**
   * The error `refused` of a create that cannot be sold (its offer or image gone, its seconds no
   * longer allowed) as its payment gets it: a payment made before the request (a paid L402
   * invoice, which names this very request, so it can never buy anything else) is read, never
   * taken, and handed back with the refusal (Refunds.returned); any other payment is left as it
   * is, and so is the error.
   */
  private async refusedUnsold(
    headers: PaymentHeaders,
    subject: PaymentSubject,
    refused: AlacarteError,
  ): Promise<AlacarteError> {
    // A payment made before the request travels as a credential in Authorization (L402); a token
    // (X-Cashu) is never taken by a refusal, so it is not even read (no mint asked for nothing).
    if (typeof headers.authorization !== 'string') return refused;
    let seen: InspectedPayment | undefined;
    const unit = this.offers[0]?.unit ?? 'sat';
    const nothing = Amount.zero(unit);
    try {
      await this.rail.redeem(
        {
          headers: { authorization: headers.authorization },
          subject,
          // Read only: stopped before any money moves.
          admit: async (payment) => {
            seen = payment;
            throw refused;
          },
          record: async () => {
            throw refused;
          },
        },
        nothing,
      );
    } catch (err) {
      if (err !== refused) return refused;
    }
    return seen ? this.refunds.returned(seen, nothing, refused, true) : refused;
  }

  /** Starts the paid sandbox; on failure the lease is failed and everything paid is refunded. */
  private async startSandbox(id: LeaseId, input: CreateLeaseInput, offer: Offer): Promise<void> {
    const startedAt = this.now();
    const deadline = new Date(startedAt.getTime() + input.seconds * 1000);
    try {
      const started = await this.driver.start(
        { leaseId: id, image: input.image, command: input.command, env: input.env, ports: input.ports },
        {
          vcpu: offer.vcpu,
          memoryMib: offer.memoryMib,
          pids: offer.pids,
          diskMib: offer.diskMib,
          ...(offer.network === 'egress' ? { network: 'egress', bandwidthMbit: offer.bandwidthMbit } : {}),
        },
        deadline,
      );
      this.emit({ type: 'started', ms: this.now().getTime() - startedAt.getTime() });
      // One commit for the starts that finish in the same event-loop turn (running-marks.ts).
      const marked = await this.runningMarks.mark(id, startedAt, deadline, started.ports);
      if (!marked) await this.reconciler.removeFailedStart(id);
    } catch (err) {
      this.log.warn(
        { err: String(err), cause: String((err as Error).cause ?? ''), lease: id },
        'sandbox failed to start; refunding',
      );
      // driver.start may have started the sandbox (and the command) before it failed, or the store
      // failed after it: nothing of a refunded lease may keep running.
      await this.reconciler.removeFailedStart(id);
      await this.reconciler.failPending(id, 'sandbox failed to start');
    }
  }
}
