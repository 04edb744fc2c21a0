import { createHash } from 'node:crypto';
import { Amount } from '../core/amount.js';
import { AlacarteError } from '../core/errors.js';
import { type LeaseId, newLeaseId, type PaymentKey, parseLeaseId } from '../core/ids.js';
import * as lifecycle from '../core/lease.js';
import { type Offer, offerToJson, quote as priceQuote } from '../core/offers.js';
import type {
  AttachSession,
  ComputeDriver,
  DriverCapacity,
  ImageDetail,
  SandboxProcess,
  TerminalSize,
} from '../drivers/compute-driver.js';
import type { Logger } from '../log.js';
import { isUniqueViolation } from '../mint/store/mint-store.js';
import type {
  InspectedPayment,
  PaymentHeaders,
  PaymentRail,
  PaymentRequest,
  PaymentSubject,
  Redeemed,
  Rejection,
} from '../rails/payment-rail.js';
import type { Database } from '../store/database.js';
import { isPostgres } from '../store/dialect.js';
import type { ReplicaNotices } from '../store/replica-notices.js';
import type { Answer } from './answer.js';
import { fits, offersThatFit, without } from './capacity.js';
import { type ComputeTarget, localTarget } from './compute-target.js';
import { DeadlineNotices } from './deadline-notices.js';
import { Extensions } from './extensions.js';
import { InFlight } from './in-flight.js';
import { checkEnough, LeasePayments } from './lease-payments.js';
import { type LeaseRow, leaseFromRow, stateColumns } from './lease-record.js';
import { credentialHash, credentialMatches, type NodeSecret } from './node-secret.js';
import { PerLeaseLimit } from './per-lease-limit.js';
import { isGone, type ReconcileOutcome, Reconciler } from './reconciler.js';
import { Refunds } from './refunds.js';
import { Replayed, Replays } from './replays.js';
import {
  requireDeadlineAllowed,
  requireRunning,
  requireSellableOffers,
  sellableImages,
} from './request-checks.js';
import { RunningMarks } from './running-marks.js';

export type { Answer } from './answer.js';

export interface CreateLeaseInput {
  offer: string;
  seconds: number;
  image: string;
  command?: string[];
  env?: Record<string, string>;
  ports?: number[];
  /** OpenSSH public key lines that may log in over SSH (checked by core/ssh-keys.ts). */
  ssh_keys?: string[];
}

/** Where a lease's SSH login is, for its answers: API.md `"ssh": {"host", "port", "user"}`. */
export interface SshEndpoint {
  host: string;
  port: number;
}

export interface LeaseServiceOptions {
  db: Database;
  driver: ComputeDriver;
  rail: PaymentRail;
  offers: readonly Offer[];
  /**
   * The images renters may ask for: names, or a function read on every request (the driver's
   * images directory, which `alacarte image pull` and `rm` change while the node runs).
   */
  images: readonly string[] | (() => readonly ImageDetail[]);
  secret: NodeSecret;
  clock?: () => Date;
  logger: Logger;
  /** Cap of exec's stdout and of its stderr, each (API.md: 1 MiB by default). */
  maxOutputBytes?: number;
  /** Called with each lease-state change, for metrics. */
  onEvent?: (event: LeaseEvent) => void;
  /**
   * The public URL of a lease's declared port, shown in the `ports` map of lease answers (see
   * http/port-routes.ts); without it the driver's own (loopback) URLs are shown.
   */
  portUrl?: (leaseId: LeaseId, port: number) => string;
  /** When terminals are told that their lease is ending, before its deadline (ms); 5 and 1 minute by default. */
  deadlineNoticeOffsetsMs?: readonly number[];
  /** The node's SSH server, once known (it may listen after the service is made); none: no SSH. */
  ssh?: () => SshEndpoint | undefined;
  /**
   * Where this replica's sandboxes are (compute-target.ts); default: the driver's, as one node.
   * Replicas sharing a store each have their own unless the driver's target is shared.
   */
  target?: ComputeTarget;
  /** How replicas sharing the store tell each other of lease changes (default: none, one node). */
  notices?: ReplicaNotices;
}

export type LeaseEvent =
  | {
      type: 'payment';
      rail: string;
      outcome: 'accepted' | 'rejected' | 'replayed';
      amount: Amount;
      code?: string;
    }
  | { type: 'started'; ms: number }
  | { type: 'ended'; state: 'expired' | 'stopped' | 'failed' };

// A real-looking hash to compare against when the lease id is unknown, so a probe cannot tell
// "no such lease" from "wrong credential" by timing.
const DUMMY_HASH = credentialHash('alacarte/no-such-lease');

/**
 * The lease service: admission, payment through a rail, start, extend, stop and refund. It holds
 * the money rules of ARCHITECTURE.md: a rejection takes nothing, a payment ends in a lease or a
 * refund, a replay never charges twice.
 */
export class LeaseService {
  private readonly db: Database;
  private readonly driver: ComputeDriver;
  private readonly rail: PaymentRail;
  private readonly offers: readonly Offer[];
  private readonly imageSource: () => readonly ImageDetail[];
  private sellable: { from: readonly ImageDetail[]; images: ImageDetail[] } | undefined;
  private readonly secret: NodeSecret;
  private readonly now: () => Date;
  private readonly log: Logger;
  private readonly emit: (event: LeaseEvent) => void;
  private readonly ssh: () => SshEndpoint | undefined;
  private readonly inFlight = new InFlight<Answer>();
  private readonly runningMarks: RunningMarks;
  private readonly execs = new PerLeaseLimit(8, 'commands');
  private readonly terminals = new PerLeaseLimit(4, 'terminals');
  private readonly transfers = new PerLeaseLimit(4, 'file transfers');
  private readonly maxOutputBytes: number;
  private readonly target: ComputeTarget;
  private readonly portUrl: ((leaseId: LeaseId, port: number) => string) | undefined;
  /** Starts under way: capacity is reserved before any money moves. */
  private readonly reserved = new Set<{ offer: Offer }>();
  /** Refunds and returned payments, paid from the mints that were paid. */
  private readonly refunds: Refunds;
  /** Answers to paid requests shown again, only to their own payment. */
  private readonly replays: Replays;
  /** A lease's payments: the 402 or the payment, its outcome, its row. */
  private readonly payments: LeasePayments;
  /** Paid extensions of running leases. */
  private readonly extensions: Extensions;
  /** Store and driver in agreement: start-up, sandbox exits, deadline writes, the reaper's passes. */
  readonly reconciler: Reconciler;
  /** Tells a lease's open terminals (attach, SSH) that it is about to end (deadline-notices.ts). */
  readonly deadlineNotices: DeadlineNotices;

  constructor(options: LeaseServiceOptions) {
    this.db = options.db;
    this.runningMarks = new RunningMarks(options.db);
    this.driver = options.driver;
    this.rail = options.rail;
    requireSellableOffers(options.offers);
    this.offers = options.offers;
    const images = options.images;
    if (typeof images === 'function') this.imageSource = images;
    else {
      const fixed = images.map((name) => ({ name, description: '', size_mib: 0 }));
      this.imageSource = () => fixed;
    }
    this.secret = options.secret;
    this.now = options.clock ?? (() => new Date());
    this.log = options.logger;
    this.emit = options.onEvent ?? (() => {});
    this.ssh = options.ssh ?? (() => undefined);
    this.maxOutputBytes = options.maxOutputBytes ?? 1024 * 1024;
    this.target = options.target ?? localTarget(options.driver);
    this.portUrl = options.portUrl;
    this.deadlineNotices = new DeadlineNotices({
      deadlineOf: (id) => this.runningDeadline(id),
      clock: this.now,
      offsetsMs: options.deadlineNoticeOffsetsMs,
      onError: (err) => this.log.warn({ err: String(err) }, 'deadline notice failed'),
    });
    this.refunds = new Refunds({ db: this.db, rail: this.rail, clock: this.now });
    this.replays = new Replays({
      db: this.db,
      rail: this.rail,
      secret: this.secret,
      refunds: this.refunds,
      leaseBody: (row) => this.leaseBody(row),
      ports: (row) => this.publicPorts(row),
      extraFields: (id) => this.sshBody(id),
      confirmDeadline: (id) => this.reconciler.confirmDeadline(id),
    });
    this.payments = new LeasePayments({ rail: this.rail, clock: this.now, emit: (e) => this.emit(e) });
    this.extensions = new Extensions({
      db: this.db,
      rail: this.rail,
      clock: this.now,
      inFlight: this.inFlight,
      payments: this.payments,
      replays: this.replays,
      refunds: this.refunds,
      reconciler: () => this.reconciler,
      deadlineNotices: this.deadlineNotices,
      // Another replica's sandbox cannot be seen from here; its holder ends it should it be gone.
      sandboxRunning: (row) =>
        this.reconciler.holds(row) ? this.driver.isRunning({ leaseId: row.id }) : Promise.resolve(true),
      price: (offer, seconds) => this.price(offer, seconds).amount,
    });
    this.reconciler = new Reconciler({
      db: this.db,
      driver: this.driver,
      now: this.now,
      log: this.log,
      end: (row, state) => this.end(row, state),
      endIn: (trx, row, state) => this.endIn(trx, row, state),
      onExpired: () => this.emit({ type: 'ended', state: 'expired' }),
      target: this.target,
      notices: options.notices,
    });
  }

  async offerList(): Promise<Array<Record<string, unknown>>> {
    const capacity = await this.capacity();
    return this.offers.map((o) => ({ ...offerToJson(o), available: capacity.get(o.id) ?? 0 }));
  }

  /** How many more sandboxes of each offer fit right now (for metrics). */
  async capacity(): Promise<Map<string, number>> {
    return offersThatFit(this.unreserved(await this.driver.capacity()), this.offers);
  }

  /** The images on sale (GET /v1/offers `image_details`): the source's, minus names no driver takes. */
  imageDetails(): readonly ImageDetail[] {
    const from = this.imageSource();
    if (this.sellable?.from !== from) {
      const names = new Set(
        sellableImages(
          from.map((i) => i.name),
          this.log,
        ),
      );
      // Exactly API.md's fields, whatever else the source knows of an image.
      const images = from
        .filter((i) => names.has(i.name))
        .map(({ name, description, size_mib }) => ({ name, description, size_mib }));
      this.sellable = { from, images };
    }
    return this.sellable.images;
  }

  imageList(): readonly string[] {
    return this.imageDetails().map((i) => i.name);
  }

  quote(offerId: string, seconds: number): { offer: string; seconds: number; amount: number; unit: string } {
    const q = this.price(offerId, seconds);
    return { offer: q.offer.id, seconds, amount: q.amount.toNumber(), unit: q.amount.unit };
  }

  // ---- create -------------------------------------------------------------------------------

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
    const idemHash = idempotencyKey === undefined ? null : sha256(`idempotency/${idempotencyKey}`);
    const id = newLeaseId();
    const createdAt = this.now();
    /** The payment as the rail read it, once admitted. */
    let seen: InspectedPayment | undefined;
    /** What admit holds until the request is answered: its keys in flight, the capacity reserved. */
    const held: Array<() => void> = [];
    try {
      const outcome = await this.redeemCreate(
        idemHash,
        {
          headers,
          subject,
          // Before any money moves: the payment's key decides whether this is a replay.
          admit: async (payment) => {
            seen = payment;
            const idemKeys = idemHash ? [`idem/${idemHash}`] : [];
            if (idemHash) {
              // A request with this key may be under way: its outcome decides what the key is bound to.
              await this.inFlight.settled(idemKeys);
              await this.replays.checkKey(idemHash, payment.key);
            }
            held.push(await this.inFlight.hold([`pay/${payment.key}`, ...idemKeys]));
            const replay = await this.replays.ofCreate(payment.key, requestHash);
            if (replay) {
              this.payments.replayed(payment);
              throw new Replayed(replay);
            }
            // Another payment may have bound the key while this one waited its turn.
            if (idemHash) await this.replays.checkKey(idemHash, payment.key);
            checkEnough(payment, price);
            held.push(await this.reserve(offer));
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
            const paid = this.payments.row(taken, id, 'create', input.seconds, idemHash, requestHash);
            await trx.insertInto('payments').values(paid).execute();
          },
        },
        price,
      );
      if (!outcome.ok) {
        // A key bound to another payment is refused (409) before the missing or refused payment
        // is answered with a 402 or the rejection (an admitted payment's key was checked there).
        if (idemHash && !seen) {
          await this.inFlight.settled([`idem/${idemHash}`]);
          await this.replays.checkKey(idemHash, undefined);
        }
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

  /**
   * The rail's redeem for a create. Should another node replica have bound the same
   * Idempotency-Key to another payment meanwhile, the store's unique constraint refuses the
   * record, the transaction (and with it the spend at this node's mint) rolls back, and the payer
   * gets the conflict with the token untouched.
   */
  private async redeemCreate(
    idemHash: string | null,
    request: PaymentRequest,
    price: Amount,
  ): Promise<Redeemed | Rejection> {
    let key: PaymentKey | undefined;
    try {
      return await this.rail.redeem(
        {
          ...request,
          admit: async (payment) => {
            key = payment.key;
            await request.admit?.(payment);
          },
        },
        price,
      );
    } catch (err) {
      if (idemHash && key && isUniqueViolation(err)) await this.replays.checkKey(idemHash, key);
      throw err;
    }
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

  /**
   * Moves a lease out of its current state (only if it is still in it) and books its refund in the
   * same transaction. False when another path (reaper, stop, extension) changed it first.
   */
  private async end(row: LeaseRow, state: lifecycle.LeaseState): Promise<boolean> {
    const ended = await this.db.transaction().execute((trx) => this.endIn(trx, row, state));
    if (ended) this.emitEnded(state);
    return ended;
  }

  /** end() inside a transaction the caller holds. */
  private async endIn(trx: Database, row: LeaseRow, state: lifecycle.LeaseState): Promise<boolean> {
    const refund = state.kind === 'stopped' || state.kind === 'failed' ? state.refunded : undefined;
    const updated = await trx
      .updateTable('leases')
      .set(stateColumns(state))
      .where('id', '=', row.id)
      .where('state', '=', row.state)
      .where('expires_at', 'is not distinct from', row.expires_at)
      .executeTakeFirst();
    if (updated.numUpdatedRows !== 1n) return false;
    if (refund) await this.refunds.book(trx, row.id, refund);
    return true;
  }

  private emitEnded(state: lifecycle.LeaseState): void {
    if (state.kind === 'expired' || state.kind === 'stopped' || state.kind === 'failed') {
      this.emit({ type: 'ended', state: state.kind });
    }
  }

  // ---- read, exec, attach --------------------------------------------------------------------

  async get(id: string, credential: string | undefined): Promise<Answer> {
    const row = await this.authorize(id, credential);
    return { status: 200, headers: {}, body: await this.leaseBody(row) };
  }

  async exec(
    id: string,
    credential: string | undefined,
    request: {
      command: string[];
      /** Text (sent as UTF-8) or bytes. */
      stdin?: string | Uint8Array;
      /** How stdout and stderr are answered: text, or the bytes unchanged as base64. */
      encoding?: 'utf8' | 'base64';
      timeoutSeconds: number;
      /** Start detached and answer at once; output discarded. */
      background?: boolean;
    },
    delivered?: Promise<unknown>,
  ): Promise<Answer> {
    const encoding = request.encoding ?? 'utf8';
    const row = await this.authorize(id, credential);
    this.requireRunning(row);
    this.requireHere(row);
    const release = this.execs.take(row.id);
    const result = await this.driver
      .exec(
        { leaseId: row.id },
        {
          command: request.command,
          stdin: request.stdin,
          timeoutMs: request.timeoutSeconds * 1000,
          maxOutputBytes: this.maxOutputBytes,
          background: request.background,
        },
      )
      .catch(async (err: unknown) => {
        release();
        if (isGone(err)) await this.reconciler.endVanished(row.id);
        throw err;
      });
    // The answer (up to twice maxOutputBytes, several times that as JSON) stays in the node's memory
    // until its client has read it: the slot is held until then, so a client that never reads holds
    // at most the per-lease number of answers, instead of one more per request (issue 9, section 3).
    if (delivered) void delivered.then(release, release);
    else release();
    if (request.background && result.pid !== undefined) {
      return { status: 202, headers: {}, body: { started: true, pid: result.pid } };
    }
    return {
      status: 200,
      headers: {},
      body: {
        exit_code: result.exitCode,
        stdout: result.stdout.toString(encoding),
        stderr: result.stderr.toString(encoding),
        truncated: result.truncated,
        // Said only when asked for, so that utf8 answers stay as they were.
        ...(encoding === 'base64' ? { encoding } : {}),
        // A background command that could not start answers like a finished exec, saying so.
        ...(request.background ? { started: false } : {}),
      },
    };
  }

  /** Checks the credential and that the lease runs, before a WebSocket is accepted. */
  async authorizeAttach(id: string, credential: string | undefined): Promise<LeaseId> {
    const row = await this.authorize(id, credential);
    this.requireRunning(row);
    this.requireHere(row);
    return row.id as LeaseId;
  }

  /** An interactive shell on a terminal in the lease's sandbox (call authorizeAttach first). */
  async attach(leaseId: LeaseId, size: TerminalSize): Promise<AttachSession> {
    const release = this.terminals.take(leaseId);
    try {
      const session = await this.driver.attach({ leaseId }, size);
      session.exited.finally(release).catch(() => undefined);
      return session;
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Checks the credential and that the lease runs, for the files API (src/files/); returns the
   * lease's disk (its offer's disk_mib), which bounds a transfer.
   */
  async authorizeFiles(
    id: string,
    credential: string | undefined,
  ): Promise<{ leaseId: LeaseId; diskMib: number }> {
    const row = await this.authorize(id, credential);
    this.requireRunning(row);
    this.requireHere(row);
    const offer = this.offers.find((o) => o.id === row.offer_id);
    // An offer the operator has since removed: the largest disk any offer sells.
    const diskMib = offer?.diskMib ?? Math.max(...this.offers.map((o) => o.diskMib));
    return { leaseId: row.id as LeaseId, diskMib };
  }

  /**
   * A process in the lease's sandbox for a file transfer (call authorizeFiles first); at most 4 at
   * once per lease, each released when its process has exited.
   */
  async spawnForFiles(leaseId: LeaseId, command: string[]): Promise<SandboxProcess> {
    const release = this.transfers.take(leaseId);
    try {
      const process = await this.driver.spawn({ leaseId }, { command });
      process.exited.finally(release).catch(() => undefined);
      return process;
    } catch (err) {
      release();
      if (isGone(err)) await this.reconciler.endVanished(leaseId);
      throw err;
    }
  }

  /** Whether the lease's sandbox still runs (read from the host, cheap). */
  sandboxRunning(leaseId: LeaseId): Promise<boolean> {
    return this.driver.isRunning({ leaseId });
  }

  // ---- extend (extensions.ts) ----------------------------------------------------------------

  /** POST /v1/leases/{id}/extend; `client` as for create. */
  extend(id: string, seconds: number, headers: PaymentHeaders, client?: string): Promise<Answer> {
    return this.extensions.extend(id, seconds, headers, client);
  }

  // ---- stop ----------------------------------------------------------------------------------

  async stop(id: string, credential: string | undefined): Promise<Answer> {
    const row = await this.authorize(id, credential);
    return this.inFlight.run([`stop/${row.id}`], async () => {
      // Read, checked and ended in one transaction, the row locked on PostgreSQL (SQLite has one
      // writer at a time already): an extension committing meanwhile is waited for and its new
      // deadline and payment seen (stopped with it in the refund), never a stale "expired".
      const ended = await this.db.transaction().execute(async (trx) => {
        const current = await trx
          .selectFrom('leases')
          .selectAll()
          .where('id', '=', row.id)
          .$if(isPostgres(trx), (q) => q.forUpdate())
          .executeTakeFirstOrThrow();
        if (current.state === 'stopped') return { stopped: true as const, row: current };
        this.requireRunning(current);
        const { state } = lifecycle.stop(leaseFromRow(current), this.now());
        if (!(await this.endIn(trx, current, state)))
          throw new AlacarteError('lease_not_running', 'the lease has ended');
        return { stopped: false as const, state };
      });
      if (ended.stopped) return this.stoppedAnswer(ended.row);
      this.emitEnded(ended.state);
      // The refund is booked: the sandbox's processes end now, before the answer; its removal
      // follows off this path, retried by the reconciler until it has gone (teardown-queue.ts).
      await this.reconciler.endSandbox(row.id as LeaseId);
      const stopped = await this.db
        .selectFrom('leases')
        .selectAll()
        .where('id', '=', row.id)
        .executeTakeFirstOrThrow();
      return this.stoppedAnswer(stopped);
    });
  }

  private async stoppedAnswer(row: LeaseRow): Promise<Answer> {
    const refund = await this.refunds.show(row);
    return { status: 200, headers: {}, body: { ...(await this.leaseBody(row)), ...refund } };
  }

  async countByState(): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('leases')
      .select(['state', ({ fn }) => fn.countAll<number>().as('n')])
      .groupBy('state')
      .execute();
    const counts: Record<string, number> = Object.fromEntries(lifecycle.LEASE_STATES.map((s) => [s, 0]));
    for (const r of rows) counts[r.state] = Number(r.n);
    return counts;
  }

  // ---- expiry and reconciliation (src/leases/reconciler.ts) --------------------------------------

  /** Reconciles the store with the driver after a (re)start; see Reconciler.reconcile. */
  reconcile(): Promise<ReconcileOutcome> {
    return this.reconciler.reconcile();
  }

  /** Ends every running lease whose deadline has passed and removes their sandboxes; returns how many. */
  reapExpired(): Promise<number> {
    return this.reconciler.reapExpired();
  }

  // ---- helpers -------------------------------------------------------------------------------

  private price(offerOrId: string | Offer, seconds: number): { offer: Offer; amount: Amount } {
    const offers = typeof offerOrId === 'string' ? this.offers : [offerOrId];
    const id = typeof offerOrId === 'string' ? offerOrId : offerOrId.id;
    const q = priceQuote(offers, id, seconds);
    if (!q.ok) throw new AlacarteError(q.code, q.message);
    return { offer: q.quote.offer, amount: q.quote.amount };
  }

  private async reserve(offer: Offer): Promise<() => void> {
    const free = this.unreserved(await this.driver.capacity());
    if (fits(free, offer) < 1) {
      const why =
        offer.network === 'egress' && free.egress === false
          ? `offer '${offer.id}' needs a network this node cannot give right now; choose another`
          : `no room for offer '${offer.id}' right now; try again shortly`;
      throw new AlacarteError('no_capacity', why);
    }
    const reservation = { offer };
    this.reserved.add(reservation);
    return () => this.reserved.delete(reservation);
  }

  private unreserved(free: DriverCapacity): DriverCapacity {
    return without(
      free,
      [...this.reserved].map((r) => r.offer),
    );
  }

  private async authorize(id: string, credential: string | undefined): Promise<LeaseRow> {
    const leaseId = parseLeaseId(id);
    const row = leaseId
      ? await this.db.selectFrom('leases').selectAll().where('id', '=', leaseId).executeTakeFirst()
      : undefined;
    const ok = credentialMatches(credential ?? '', row?.credential_hash ?? DUMMY_HASH);
    if (!row || !ok || credential === undefined)
      throw new AlacarteError('unauthorized', 'missing or wrong lease credential');
    return row;
  }

  private requireRunning(row: LeaseRow): void {
    requireRunning(row, this.now());
  }

  /**
   * The lease's sandbox must be reachable from this replica: with sandboxes local to each replica
   * (crun), exec, attach, files and ports are served only by the replica holding it. Elsewhere:
   * 421 `lease_elsewhere` (RFC 9110 "Misdirected Request"), nothing touched; README "Scaling out".
   */
  private requireHere(row: LeaseRow): void {
    if (this.reconciler.holds(row)) return;
    throw new AlacarteError(
      'lease_elsewhere',
      'this lease runs on another replica of this node, which serves its commands, terminals, files and ports; extend and stop work through any',
    );
  }

  /** A running lease's deadline, for its notices; undefined once it has ended. */
  private async runningDeadline(id: string): Promise<Date | undefined> {
    const row = await this.db.selectFrom('leases').selectAll().where('id', '=', id).executeTakeFirst();
    if (row?.state !== 'running' || row.expires_at === null) return undefined;
    return new Date(Number(row.expires_at));
  }

  /** The `ports` map of a lease answer: port -> public URL (API.md keeps its shape). */
  private publicPorts(row: LeaseRow): Record<string, string> {
    const stored = JSON.parse(row.ports_json) as Record<string, string>;
    if (!this.portUrl) return stored;
    const out: Record<string, string> = {};
    for (const port of Object.keys(stored)) out[port] = this.portUrl(row.id as LeaseId, Number(port));
    return out;
  }

  /**
   * Where the node relays a lease's declared port: the driver's URL of it (on the node's loopback).
   * No credential: a lease's ports are public, like a server's (README, "Port URLs"). Throws
   * `not_found` for an unknown lease or a port it did not declare, `lease_not_running` once it
   * has ended.
   */
  async portTarget(id: string, port: number): Promise<string> {
    const leaseId = parseLeaseId(id);
    const row = leaseId
      ? await this.db.selectFrom('leases').selectAll().where('id', '=', leaseId).executeTakeFirst()
      : undefined;
    if (!row) throw new AlacarteError('not_found', 'no such lease');
    this.requireRunning(row);
    this.requireHere(row);
    const target = (JSON.parse(row.ports_json) as Record<string, string>)[String(port)];
    if (!target) throw new AlacarteError('not_found', `the lease does not expose port ${port}`);
    return target;
  }

  private async leaseBody(row: LeaseRow): Promise<Record<string, unknown>> {
    const payments = await this.db
      .selectFrom('payments')
      .select(['amount'])
      .where('lease_id', '=', row.id)
      .execute();
    const now = this.now();
    const lease = leaseFromRow(row);
    return {
      id: row.id,
      state: row.state,
      offer: row.offer_id,
      image: row.image,
      created_at: iso(row.created_at),
      expires_at: row.expires_at === null ? null : iso(row.expires_at),
      paid: payments.reduce((sum, p) => sum + Number(p.amount), 0),
      unit: row.unit,
      ports: this.publicPorts(row),
      remaining_seconds: lifecycle.remainingSeconds(lease.state, now),
      ...this.sshBody(row.id),
    };
  }

  private sshBody(id: string): { ssh?: { host: string; port: number; user: string } } {
    const endpoint = this.ssh();
    return endpoint ? { ssh: { host: endpoint.host, port: endpoint.port, user: id } } : {};
  }
}

function iso(ms: number | bigint): string {
  return new Date(Number(ms)).toISOString();
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
