import type { Amount } from '../core/amount.js';
import type { LeaseId } from '../core/ids.js';
import type { Offer } from '../core/offers.js';
import type {
  AttachSession,
  ComputeDriver,
  ImageDetail,
  SandboxProcess,
  TerminalSize,
} from '../drivers/compute-driver.js';
import type { Logger } from '../log.js';
import type { PaymentHeaders, PaymentRail } from '../rails/payment-rail.js';
import type { Database } from '../store/database.js';
import { GroupCommit } from '../store/group-commit.js';
import type { ReplicaNotices } from '../store/replica-notices.js';
import type { Tables } from '../store/schema.js';
import type { Answer } from './answer.js';
import { Catalog } from './catalog.js';
import { type ComputeTarget, localTarget } from './compute-target.js';
import { Creations } from './creations.js';
import { DeadlineNotices } from './deadline-notices.js';
import { Endings } from './endings.js';
import { Extensions } from './extensions.js';
import { InFlight } from './in-flight.js';
import { LeaseAccess } from './lease-access.js';
import { LeasePayments } from './lease-payments.js';
import { LeaseViews } from './lease-views.js';
import type { NodeSecret } from './node-secret.js';
import { type ReconcileOutcome, Reconciler } from './reconciler.js';
import { Refunds } from './refunds.js';
import { Replays } from './replays.js';
import { SandboxAccess } from './sandbox-access.js';

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
  /**
   * The node's group commit (src/store/group-commit.ts), shared with the mint's payments so that
   * a turn's payments and `running` marks share one COMMIT on SQLite. Default: one of the
   * service's own, grouping the marks only.
   */
  groupCommit?: GroupCommit<Tables>;
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

/**
 * The lease service: admission, payment through a rail, start, extend, stop and refund. It holds
 * the money rules of ARCHITECTURE.md: a rejection takes nothing, a payment ends in a lease or a
 * refund, a replay never charges twice. A façade over the modules that do each job: catalog.ts
 * (offers, images, prices, capacity), creations.ts (create), extensions.ts (extend), endings.ts
 * (stop and every end's refund booking), sandbox-access.ts (exec, attach, files, ports),
 * lease-access.ts (credential, running, replica), lease-views.ts (answers), reconciler.ts.
 */
export class LeaseService {
  private readonly catalog: Catalog;
  private readonly access: LeaseAccess;
  private readonly views: LeaseViews;
  private readonly inFlight = new InFlight<Answer>();
  /** Refunds and returned payments, paid from the mints that were paid. */
  private readonly refunds: Refunds;
  /** Answers to paid requests shown again, only to their own payment. */
  private readonly replays: Replays;
  /** A lease's payments: the 402 or the payment, its outcome, its row. */
  private readonly payments: LeasePayments;
  /** New leases: admission, payment, start. */
  private readonly creations: Creations;
  /** Paid extensions of running leases. */
  private readonly extensions: Extensions;
  /** Leases ending: stop, and the state change with its refund booking for every end. */
  private readonly endings: Endings;
  /** A running lease's sandbox: exec, attach, files, ports. */
  private readonly sandboxes: SandboxAccess;
  /** Store and driver in agreement: start-up, sandbox exits, deadline writes, the reaper's passes. */
  readonly reconciler: Reconciler;
  /** Tells a lease's open terminals (attach, SSH) that it is about to end (deadline-notices.ts). */
  readonly deadlineNotices: DeadlineNotices;

  constructor(options: LeaseServiceOptions) {
    const { db, driver, rail, offers, secret, logger: log } = options;
    this.catalog = new Catalog({ driver, offers, images: options.images, logger: log });
    const now = options.clock ?? (() => new Date());
    const emit = options.onEvent ?? (() => {});
    const target = options.target ?? localTarget(driver);
    const reconciler = () => this.reconciler;
    this.access = new LeaseAccess({ db, clock: now, reconciler });
    this.views = new LeaseViews({
      db,
      clock: now,
      ssh: options.ssh ?? (() => undefined),
      portUrl: options.portUrl,
    });
    this.deadlineNotices = new DeadlineNotices({
      deadlineOf: (id) => this.views.runningDeadline(id),
      clock: now,
      offsetsMs: options.deadlineNoticeOffsetsMs,
      onError: (err) => log.warn({ err: String(err) }, 'deadline notice failed'),
    });
    this.refunds = new Refunds({ db, rail, clock: now });
    this.replays = new Replays({
      db,
      rail,
      secret,
      refunds: this.refunds,
      leaseBody: (row) => this.views.leaseBody(row),
      ports: (row) => this.views.publicPorts(row),
      extraFields: (id) => this.views.sshBody(id),
      confirmDeadline: (id) => this.reconciler.confirmDeadline(id),
    });
    this.payments = new LeasePayments({ rail, clock: now, emit: (e) => emit(e) });
    const shared = {
      inFlight: this.inFlight,
      payments: this.payments,
      replays: this.replays,
      refunds: this.refunds,
      reconciler,
    };
    this.creations = new Creations({
      // Marks are grouped on every store: a burst's starts then cost one commit, not one each.
      marks:
        options.groupCommit?.grouped === true
          ? options.groupCommit.transact
          : new GroupCommit(db, { grouped: true }).transact,
      driver,
      rail,
      secret,
      clock: now,
      logger: log,
      emit,
      target,
      offers,
      catalog: this.catalog,
      ...shared,
    });
    this.extensions = new Extensions({
      db,
      rail,
      clock: now,
      ...shared,
      deadlineNotices: this.deadlineNotices,
      // Another replica's sandbox cannot be seen from here; its holder ends it should it be gone.
      sandboxRunning: (row) =>
        this.reconciler.holds(row) ? driver.isRunning({ leaseId: row.id }) : Promise.resolve(true),
      price: (offer, seconds) => this.catalog.price(offer, seconds).amount,
    });
    this.endings = new Endings({
      db,
      clock: now,
      emit,
      inFlight: this.inFlight,
      refunds: this.refunds,
      access: this.access,
      views: this.views,
      reconciler,
      // SQLite: a stop's COMMIT shared with the other stops, payments and marks of its turn.
      transact: options.groupCommit?.grouped === true ? options.groupCommit.transact : undefined,
    });
    this.sandboxes = new SandboxAccess({
      db,
      driver,
      offers,
      maxOutputBytes: options.maxOutputBytes ?? 1024 * 1024,
      access: this.access,
      reconciler,
    });
    this.reconciler = new Reconciler({
      db,
      driver,
      now,
      log,
      end: (row, state) => this.endings.end(row, state),
      endIn: (trx, row, state) => this.endings.endIn(trx, row, state),
      onExpired: () => emit({ type: 'ended', state: 'expired' }),
      target,
      notices: options.notices,
    });
  }

  // ---- offers (catalog.ts) -------------------------------------------------------------------

  /** GET /v1/offers `offers`: each offer as API.md shows it, with how many more fit (`available`). */
  offerList(): Promise<Array<Record<string, unknown>>> {
    return this.catalog.offerList();
  }

  /** How many more sandboxes of each offer fit right now (for metrics). */
  capacity(): Promise<Map<string, number>> {
    return this.catalog.capacity();
  }

  /** The images on sale (GET /v1/offers `image_details`): the source's, minus names no driver takes. */
  imageDetails(): readonly ImageDetail[] {
    return this.catalog.imageDetails();
  }

  /** The names of the images on sale. */
  imageList(): readonly string[] {
    return this.catalog.imageList();
  }

  /** A quote for `seconds` of an offer; throws AlacarteError `invalid_request` (see Catalog.quote). */
  quote(offerId: string, seconds: number): { offer: string; seconds: number; amount: number; unit: string } {
    return this.catalog.quote(offerId, seconds);
  }

  // ---- create (creations.ts) -----------------------------------------------------------------

  /**
   * POST /v1/leases. `client` names who asks (their address, an IPv6 one by its /64), for the
   * rails' bounds on what an unpaid 402 may cost (PaymentRail.challenge); never stored or logged.
   */
  create(
    input: CreateLeaseInput,
    headers: PaymentHeaders,
    idempotencyKey?: string,
    client?: string,
  ): Promise<Answer> {
    return this.creations.create(input, headers, idempotencyKey, client);
  }

  // ---- read, exec, attach (sandbox-access.ts) --------------------------------------------------

  /** GET /v1/leases/{id}; throws `unauthorized` for a wrong credential or an unknown lease. */
  async get(id: string, credential: string | undefined): Promise<Answer> {
    const row = await this.access.authorize(id, credential);
    return { status: 200, headers: {}, body: await this.views.leaseBody(row) };
  }

  /** POST /v1/leases/{id}/exec (see SandboxAccess.exec). */
  exec(
    id: string,
    credential: string | undefined,
    request: Parameters<SandboxAccess['exec']>[2],
    delivered?: Promise<unknown>,
  ): Promise<Answer> {
    return this.sandboxes.exec(id, credential, request, delivered);
  }

  /** Checks the credential and that the lease runs, before a WebSocket is accepted. */
  authorizeAttach(id: string, credential: string | undefined): Promise<LeaseId> {
    return this.sandboxes.authorizeAttach(id, credential);
  }

  /** Whether the lease has ended (stopped, expired, failed, or past its deadline), read from the store. */
  hasEnded(leaseId: LeaseId): Promise<boolean> {
    return this.sandboxes.hasEnded(leaseId);
  }

  /** An interactive shell on a terminal in the lease's sandbox (call authorizeAttach first). */
  attach(leaseId: LeaseId, size: TerminalSize): Promise<AttachSession> {
    return this.sandboxes.attach(leaseId, size);
  }

  /**
   * Checks the credential and that the lease runs, for the files API (src/files/); returns the
   * lease's disk (its offer's disk_mib), which bounds a transfer.
   */
  authorizeFiles(id: string, credential: string | undefined): Promise<{ leaseId: LeaseId; diskMib: number }> {
    return this.sandboxes.authorizeFiles(id, credential);
  }

  /**
   * A process in the lease's sandbox for a file transfer (call authorizeFiles first); at most 4 at
   * once per lease, each released when its process has exited.
   */
  spawnForFiles(leaseId: LeaseId, command: string[]): Promise<SandboxProcess> {
    return this.sandboxes.spawnForFiles(leaseId, command);
  }

  /** Whether the lease's sandbox still runs (read from the host, cheap). */
  sandboxRunning(leaseId: LeaseId): Promise<boolean> {
    return this.sandboxes.sandboxRunning(leaseId);
  }

  /**
   * Where the node relays a lease's declared port (see SandboxAccess.portTarget). Throws
   * `not_found`, `lease_not_running`, `lease_elsewhere`.
   */
  portTarget(id: string, port: number): Promise<string> {
    return this.sandboxes.portTarget(id, port);
  }

  // ---- extend (extensions.ts) ----------------------------------------------------------------

  /** POST /v1/leases/{id}/extend; `client` and `idempotencyKey` as for create. */
  extend(
    id: string,
    seconds: number,
    headers: PaymentHeaders,
    client?: string,
    idempotencyKey?: string,
  ): Promise<Answer> {
    return this.extensions.extend(id, seconds, headers, client, idempotencyKey);
  }

  // ---- stop (endings.ts) ------------------------------------------------------------------------

  /** DELETE /v1/leases/{id}: stops the lease and answers its refund (see Endings.stop). */
  stop(id: string, credential: string | undefined): Promise<Answer> {
    return this.endings.stop(id, credential);
  }

  /** How many leases are in each state, for metrics. */
  countByState(): Promise<Record<string, number>> {
    return this.views.countByState();
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
}
