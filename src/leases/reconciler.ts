import { AlacarteError } from '../core/errors.js';
import type { LeaseId } from '../core/ids.js';
import * as lifecycle from '../core/lease.js';
import type { ComputeDriver } from '../drivers/compute-driver.js';
import type { Logger } from '../log.js';
import type { Database } from '../store/database.js';
import { isPostgres } from '../store/dialect.js';
import { LOCAL_NOTICES, type ReplicaNotices } from '../store/replica-notices.js';
import { type ComputeTarget, holds, localTarget } from './compute-target.js';
import { HolderLink } from './holder-link.js';
import { type LeaseRow, leaseFromRow, stateColumns } from './lease-record.js';
import { TeardownQueue } from './teardown-queue.js';

/**
 * How the reconciler changes a lease's state: the lease service's end(), which moves the lease out
 * of `row.state` (only if it is still in it) and books its refund in the same transaction.
 */
export type EndLease = (row: LeaseRow, state: lifecycle.LeaseState) => Promise<boolean>;
/** end() inside a transaction the caller holds (for many leases in one commit). */
export type EndLeaseIn = (trx: Database, row: LeaseRow, state: lifecycle.LeaseState) => Promise<boolean>;

export interface ReconcilerOptions {
  db: Database;
  driver: ComputeDriver;
  now: () => Date;
  log: Logger;
  end: EndLease;
  endIn: EndLeaseIn;
  /** Called once per lease that expired here, for metrics. */
  onExpired: () => void;
  /** How often deadline writes and removals that failed are tried again, in ms (default 1000). */
  retryMs?: number;
  /** The compute target whose leases this replica reconciles (default: the driver's, one node). */
  target?: ComputeTarget;
  /** How replicas sharing the store tell a sandbox's holder that its lease changed (default: none). */
  notices?: ReplicaNotices;
  /** How long an extension or a stop through another replica waits for the holder's answer, ms (5000). */
  holderAnswerMs?: number;
}

/**
 * A pending lease another replica started on a shared target is left to it this long (its start is
 * under way there); past it, its start is taken to have died with that replica.
 */
const FOREIGN_PENDING_GRACE_MS = 10 * 60_000;
/** How often a replica on a shared store looks for its own sandboxes' changes it may have missed. */
const SWEEP_MS = 30_000;

/** A deadline write's outcome (syncDeadline), with the deadline written, ms. */
type DeadlineWrite = { outcome: 'synced'; deadline: number } | { outcome: 'ended' | 'failed' };

export interface ReconcileOutcome {
  /** Sandboxes nobody paid for (or whose lease ended), stopped. */
  stoppedSandboxes: number;
  /** Paid leases whose start never finished and whose sandbox is not there: failed, refunded. */
  failed: number;
  /** Paid leases whose start had finished in the driver but not in the store: now running. */
  resumed: number;
  /** Running leases whose sandbox is gone: ended, unused time refunded. */
  vanished: number;
  /** Running sandboxes whose deadline differed from the store's and was rewritten (or is being retried). */
  deadlines: number;
}

/** A start-up reconcile in words, for the operator reading the log (ReconcileOutcome's fields). */
export function reconcileSummary(outcome: ReconcileOutcome): string {
  const parts = [
    [outcome.resumed, 'lease(s) whose start had finished are running'],
    [outcome.failed, 'paid start(s) that never finished were failed and refunded'],
    [
      outcome.vanished,
      'running lease(s) whose sandbox was gone (the host restarted, or it was removed) were ended and their unused time refunded',
    ],
    [outcome.deadlines, "sandbox deadline(s) were set again to the store's"],
    [outcome.stoppedSandboxes, 'sandbox(es) nobody pays for were removed'],
  ] as const;
  return parts
    .filter(([n]) => n > 0)
    .map(([n, what]) => `${n} ${what}`)
    .join('; ');
}

/**
 * Keeps the store and the driver in agreement (src/leases/README.md has the table): at start-up
 * (reconcile), continuously (sandbox exits reported by the driver's watch(); deadline writes and
 * removals that failed are retried), and for the reaper (expireDue, removeSandboxes). The store is
 * the truth about money and deadlines; the driver is the truth about what runs.
 */
export class Reconciler {
  private readonly db: Database;
  private readonly driver: ComputeDriver;
  private readonly now: () => Date;
  private readonly log: Logger;
  private readonly end: EndLease;
  private readonly endIn: EndLeaseIn;
  private readonly onExpired: () => void;
  private readonly retryMs: number;
  private readonly target: ComputeTarget;
  private readonly notices: ReplicaNotices;
  /** To and from the replicas holding the sandboxes of leases changed here, and for this one's. */
  private readonly link: HolderLink;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Running leases whose sandbox may not have the store's deadline (its last write failed). */
  private readonly unsynced = new Set<LeaseId>();
  /** Sandboxes of ended or failed leases whose removal failed: nothing of theirs may keep running. */
  private readonly unremoved = new Set<LeaseId>();
  /** Deadline writes per lease, one after the other, so an older deadline never lands last. */
  private readonly writes = new Map<LeaseId, Promise<unknown>>();
  private readonly pending = new Set<Promise<unknown>>();
  /** Stopped leases' sandboxes: halted before the answer, removed after it (teardown-queue.ts). */
  private readonly teardown: TeardownQueue;
  private unwatch: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retrying = false;

  constructor(options: ReconcilerOptions) {
    this.db = options.db;
    this.driver = options.driver;
    this.now = options.now;
    this.log = options.log;
    this.end = options.end;
    this.endIn = options.endIn;
    this.onExpired = options.onExpired;
    this.retryMs = options.retryMs ?? 1000;
    this.target = options.target ?? localTarget(options.driver);
    this.notices = options.notices ?? LOCAL_NOTICES;
    this.link = new HolderLink({ notices: this.notices, log: this.log, answerMs: options.holderAnswerMs });
    this.teardown = new TeardownQueue({
      driver: this.driver,
      remove: (id) => this.removeSandbox(id),
      log: this.log,
    });
  }

  // ---- continuous ------------------------------------------------------------------------------

  /** Starts watching sandbox exits and retrying failed deadline writes and removals. */
  start(): void {
    if (this.unwatch) return;
    this.unwatch = this.driver.watch((leaseId) => {
      this.track(this.sandboxExited(leaseId as LeaseId));
    });
    this.timer = setInterval(() => void this.retry(), this.retryMs);
    this.timer.unref();
    if (this.notices.shared) {
      // Another replica stopped or extended a lease whose sandbox is here: carry it out, and say
      // so. A notice missed (connection down) is found by the sweep after reconnecting, and every
      // SWEEP_MS.
      this.link.start(
        (id) => this.track(this.heldChanged(id)),
        () => this.track(this.sweep()),
      );
      this.sweepTimer = setInterval(() => this.track(this.sweep()), SWEEP_MS);
      this.sweepTimer.unref();
    }
  }

  /** Whether this replica holds the lease's sandbox (or reaches it: a shared target). */
  holds(row: { target: string }): boolean {
    return holds(this.target, row);
  }

  /**
   * Before an extension or a stop of a lease another replica holds takes any money: that replica
   * must be up to carry it out. Throws 503 `replica_unavailable` otherwise (HolderLink).
   */
  async requireHolder(row: { target: string; replica: string }): Promise<void> {
    if (this.holds(row)) return;
    await this.link.requirePresent(row.replica);
  }

  /**
   * A lease of this replica's target changed elsewhere: its sandbox follows the store, and the
   * replica that changed it hears what the sandbox has now.
   */
  private async heldChanged(id: string): Promise<void> {
    const row = await this.db
      .selectFrom('leases')
      .select(['id', 'state', 'target'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row || !this.holds(row) || row.state === 'pending') return;
    await this.follow(row.id as LeaseId, row.state === 'running');
  }

  /**
   * Carries out the store's deadline (`running`) or end of one of this replica's leases, and says
   * so (an end only when `sayEnded`: the sweep meets ended leases whose removal is behind, and
   * nobody waits for those).
   */
  private async follow(id: LeaseId, running: boolean, sayEnded = true): Promise<void> {
    if (running) {
      const written = await this.queueDeadline(id);
      if (written.outcome === 'synced') return this.link.answer(id, written.deadline);
      if (written.outcome === 'failed') return;
    }
    await this.teardown.end(id);
    if (sayEnded) await this.link.answer(id, 'ended');
  }

  /**
   * Every sandbox of this target against the store: ended leases' sandboxes end, running ones get
   * the store's deadline where it differs (what notices say, should one have been missed).
   */
  private async sweep(): Promise<void> {
    const sandboxes = await this.driver.list();
    if (sandboxes.length === 0) return;
    const rows = await this.db
      .selectFrom('leases')
      .select(['id', 'state', 'target', 'expires_at'])
      .where(
        'id',
        'in',
        sandboxes.map((s) => s.leaseId),
      )
      .execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const sandbox of sandboxes) {
      const row = byId.get(sandbox.leaseId);
      if (!row || !this.holds(row) || row.state === 'pending') continue;
      if (row.state !== 'running') await this.follow(row.id as LeaseId, false, false);
      else if (Number(row.expires_at) !== sandbox.deadline.getTime())
        await this.follow(row.id as LeaseId, true);
    }
  }

  /** Stops watching and waits for what the watch started. Sandboxes keep running. */
  async close(): Promise<void> {
    this.unwatch?.();
    this.unwatch = undefined;
    this.link.close();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.pending]);
    await this.teardown.drained();
  }

  private track(work: Promise<unknown>): void {
    const guarded = work.catch((err: unknown) =>
      this.log.error({ err: String(err) }, 'reconciliation failed'),
    );
    this.pending.add(guarded);
    void guarded.finally(() => this.pending.delete(guarded));
  }

  /** A sandbox's init ended: a lease still running in the store ends now, unused time refundable. */
  private async sandboxExited(id: LeaseId): Promise<void> {
    // The driver may report a lease id after a stop, or (ids are never reused) nothing: check.
    if (await this.driver.isRunning({ leaseId: id })) return;
    const held = await this.db.selectFrom('leases').select('target').where('id', '=', id).executeTakeFirst();
    if (held && !this.holds(held)) return;
    if (await this.endVanished(id)) {
      this.log.warn({ lease: id }, 'sandbox ended before its lease; lease ended');
      await this.removeSandboxes([id]);
      return;
    }
    // Died between driver.start() and the store's `running`: look again once the start has settled.
    const row = await this.db.selectFrom('leases').select('state').where('id', '=', id).executeTakeFirst();
    if (row?.state === 'pending' && this.unwatch) {
      setTimeout(() => {
        if (this.unwatch) this.track(this.sandboxExited(id));
      }, this.retryMs).unref();
    }
  }

  private async retry(): Promise<void> {
    if (this.retrying) return;
    this.retrying = true;
    try {
      for (const id of [...this.unsynced]) await this.syncDeadline(id);
      for (const id of [...this.unremoved]) await this.removeSandbox(id, true);
    } catch (err) {
      this.log.error({ err: String(err) }, 'reconciliation retry failed');
    } finally {
      this.retrying = false;
    }
  }

  // ---- deadlines -------------------------------------------------------------------------------

  /**
   * Writes the store's current deadline of a running lease into its sandbox. Returns 'synced', or
   * 'ended' when the lease is not running (any more: a gone sandbox ends it here, unused time
   * refunded), or 'failed' when the write failed: the lease is then retried every retryMs until it
   * succeeds or the sandbox ends at its old deadline (then it ends early and is refunded, as any
   * sandbox that dies). Never throws for a driver failure.
   */
  async syncDeadline(id: LeaseId): Promise<'synced' | 'ended' | 'failed'> {
    return (await this.queueDeadline(id)).outcome;
  }

  /** syncDeadline, with the deadline written (ms) when it was. */
  private queueDeadline(id: LeaseId): Promise<DeadlineWrite> {
    const before = this.writes.get(id) ?? Promise.resolve();
    const write = before.then(() => this.writeDeadline(id));
    const settled = write.catch(() => undefined);
    this.writes.set(id, settled);
    void settled.finally(() => {
      if (this.writes.get(id) === settled) this.writes.delete(id);
    });
    return write;
  }

  private async writeDeadline(id: LeaseId): Promise<DeadlineWrite> {
    // Read inside the queue: the newest deadline is what this write puts down.
    const row = await this.db.selectFrom('leases').selectAll().where('id', '=', id).executeTakeFirst();
    if (row?.state !== 'running') {
      this.unsynced.delete(id);
      return { outcome: 'ended' };
    }
    // The sandbox is another replica's: confirmDeadline, which every answer showing the new
    // deadline goes through, asks it to write it (it also does at its sweep and restart).
    if (!this.holds(row)) return { outcome: 'synced', deadline: Number(row.expires_at) };
    try {
      await this.driver.setDeadline({ leaseId: id }, new Date(Number(row.expires_at)));
      this.unsynced.delete(id);
      return { outcome: 'synced', deadline: Number(row.expires_at) };
    } catch (err) {
      if (isGone(err)) {
        this.unsynced.delete(id);
        await this.endVanished(id);
        return { outcome: 'ended' };
      }
      if (!this.unsynced.has(id))
        this.log.error({ err: String(err), lease: id }, 'could not write a deadline');
      this.unsynced.add(id);
      return { outcome: 'failed' };
    }
  }

  /**
   * For an answer that shows the store's deadline (an extension and its replays): the sandbox must
   * have it too. Tries again a write that failed, or asks the replica holding the sandbox and waits
   * for its answer; throws `rate_limited` (retry with the same payment) while the sandbox does not
   * have it. A lease that ended meanwhile passes: its answer shows the end.
   */
  async confirmDeadline(id: LeaseId): Promise<void> {
    // Only crun replicas on a shared store have sandboxes elsewhere.
    if (this.link.shared && !this.target.shared) {
      const row = await this.db
        .selectFrom('leases')
        .select(['state', 'target', 'replica', 'expires_at'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (row?.state === 'running' && !this.holds(row)) {
        if (await this.link.ask(id, Number(row.expires_at), row.replica)) return;
        throw notYetTaken('the replica holding the sandbox has not confirmed its new deadline yet');
      }
    }
    if (!this.unsynced.has(id)) return;
    if ((await this.syncDeadline(id)) === 'failed')
      throw notYetTaken('the sandbox has not taken its new deadline yet');
  }

  // ---- ends ------------------------------------------------------------------------------------

  /**
   * Ends a running lease whose sandbox is gone: the unused time is refunded to its holder (DELETE
   * shows the refund); past its deadline it simply expired. True when this call ended it. `read` is
   * its row as the caller has just read it (else it is read here): the end is conditional on the
   * state and deadline it shows, so a row changed since then is left as it is.
   */
  async endVanished(id: string, read?: LeaseRow): Promise<boolean> {
    const row =
      read ?? (await this.db.selectFrom('leases').selectAll().where('id', '=', id).executeTakeFirst());
    if (row?.state !== 'running') return false;
    // Another replica's sandbox is not visible from here: gone here says nothing about it.
    if (!this.holds(row)) return false;
    const lease = leaseFromRow(row);
    const now = this.now();
    const past = Number(row.expires_at) <= now.getTime();
    return this.end(row, past ? lifecycle.expire(lease.state, now) : lifecycle.stop(lease, now).state);
  }

  /**
   * Removes the sandbox of a start that failed, whatever driver.start() did before failing, and
   * checks with list() that it is gone. On failure it is retried every retryMs (and at the next
   * start-up, where a sandbox without a running lease is stopped). Never throws.
   */
  removeFailedStart(id: LeaseId): Promise<boolean> {
    return this.removeSandbox(id, true);
  }

  /**
   * For a lease the store has just ended (its refund booked): nothing of its sandbox runs once this
   * resolves, and its removal follows off the request path (teardown-queue.ts); a removal that
   * fails is retried as removeSandbox's. Never throws.
   */
  async endSandbox(id: LeaseId): Promise<void> {
    if (this.link.shared) {
      const row = await this.db
        .selectFrom('leases')
        .select(['target', 'replica'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (row && !this.holds(row)) {
        // Its holder halts it and says so. One that is down, or does not answer in time, ends it
        // when back (its start-up reconcile) or at its sweep: the stop still answers, its refund
        // booked, and nothing of the sandbox is reachable meanwhile (only its holder reaches it).
        if (await this.link.ask(id, 'ended', row.replica)) return;
        this.log.warn({ lease: id }, 'the replica holding the stopped lease has not confirmed its end');
        return;
      }
    }
    return this.teardown.end(id);
  }

  /**
   * Removes the sandbox of a lease the store has ended (stopped, expired, failed). A removal that
   * fails is retried every retryMs, so a refunded lease's sandbox does not run on to its old
   * deadline. With `verify`, list() must no longer show it. True once it is gone; never throws.
   */
  async removeSandbox(id: LeaseId, verify = false): Promise<boolean> {
    try {
      await this.driver.stop({ leaseId: id });
      if (verify && (await this.driver.list()).some((s) => s.leaseId === id))
        throw new Error('the sandbox is still listed after stop');
      this.unremoved.delete(id);
      return true;
    } catch (err) {
      if (!this.unremoved.has(id))
        this.log.error({ err: String(err), lease: id }, 'could not remove the sandbox of an ended lease');
      this.unremoved.add(id);
      return false;
    }
  }

  // ---- the reaper's passes ---------------------------------------------------------------------

  /** Ends every running lease whose deadline has passed and removes their sandboxes; returns how many. */
  async reapExpired(): Promise<number> {
    const ended = await this.expireDue();
    await this.removeSandboxes(ended);
    return ended.length;
  }

  /**
   * Marks every running lease whose deadline has passed as expired, all in one transaction: when
   * many leases end together, one durable commit instead of one each keeps the last of them on
   * time. Returns the leases it ended whose sandboxes are this replica's, still to be removed
   * (removeSandboxes); the holders of the others are told (each sandbox also ends at its deadline
   * on its own).
   */
  async expireDue(): Promise<LeaseId[]> {
    const now = this.now();
    const dueIn = (db: Database) =>
      db
        .selectFrom('leases')
        .selectAll()
        .where('state', '=', 'running')
        .where('expires_at', '<=', now.getTime())
        .orderBy('id');
    const due = await dueIn(this.db).execute();
    if (due.length === 0) return [];
    const postgres = isPostgres(this.db);
    const ended = await this.db.transaction().execute(async (trx) => {
      // Replicas sharing a PostgreSQL store each run a reaper, with no leader: each takes the due
      // rows no other one holds (SKIP LOCKED) and ends them under its lock, so every lease is
      // ended once, and a busy replica's rows never make another wait. (SQLite: one process.)
      const rows = postgres ? await dueIn(trx).forUpdate().skipLocked().execute() : due;
      const done: LeaseRow[] = [];
      for (const row of rows) {
        if (await this.endIn(trx, row, lifecycle.expire(leaseFromRow(row).state, now))) done.push(row);
      }
      return done;
    });
    for (const _ of ended) this.onExpired();
    for (const row of ended) if (!this.holds(row)) await this.link.tell(row.id);
    return ended.filter((row) => this.holds(row)).map((row) => row.id as LeaseId);
  }

  /**
   * Removes the sandboxes of ended leases, two at a time (each is a runtime delete and unmounts,
   * tens of milliseconds, much of it spawning on this thread; more at once only slows the reaper's
   * next passes and the HTTP answers). This is cleanup: init ends a sandbox's processes at its
   * deadline on its own. Never rejects; a sandbox that cannot be removed is logged and retried.
   */
  async removeSandboxes(ids: readonly LeaseId[], concurrency = 2): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < ids.length) await this.removeSandbox(ids[next++] as LeaseId);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
  }

  /** The next deadline of a running lease, for the reaper's timer. */
  async nextDeadline(): Promise<Date | undefined> {
    const row = await this.db
      .selectFrom('leases')
      .select(({ fn }) => fn.min('expires_at').as('next'))
      .where('state', '=', 'running')
      .executeTakeFirst();
    return row?.next == null ? undefined : new Date(Number(row.next));
  }

  // ---- start-up --------------------------------------------------------------------------------

  /**
   * After a restart: makes the store and the driver agree. A sandbox nobody paid for is stopped;
   * a paid lease whose start never finished becomes running (sandbox there) or failed with a full
   * refund (no sandbox); a running lease whose sandbox vanished is stopped with the unused time
   * refunded; a running sandbox whose deadline differs from the store's (an extension committed
   * before its deadline write, or whose write failed) gets the store's.
   *
   * Only this replica's compute target counts (compute-target.ts): other replicas' leases are
   * theirs to reconcile. On a shared target (LXD), a pending lease another replica started less
   * than FOREIGN_PENDING_GRACE_MS ago is being started there and left alone, and a sandbox with no
   * lease row at all is left to its own deadline rather than removed (it may be another store's).
   */
  async reconcile(): Promise<ReconcileOutcome> {
    const sandboxes = new Map((await this.driver.list()).map((s) => [s.leaseId, s]));
    // Read after list(): a sandbox listed has its row (rows are committed before starts) in here.
    const live = (
      await this.db
        .selectFrom('leases')
        .selectAll()
        .where('state', 'in', ['pending', 'running'])
        .where('target', 'in', [this.target.id, ''])
        .execute()
    ).filter((row) => !this.startingElsewhere(row));
    const result: ReconcileOutcome = {
      stoppedSandboxes: 0,
      failed: 0,
      resumed: 0,
      vanished: 0,
      deadlines: 0,
    };
    for (const row of live) {
      const sandbox = sandboxes.get(row.id);
      sandboxes.delete(row.id);
      if (row.state === 'pending') {
        if (sandbox) {
          const startedAt = new Date(Number(row.created_at));
          await this.db
            .updateTable('leases')
            .set(stateColumns({ kind: 'running', startedAt, expiresAt: sandbox.deadline }))
            .where('id', '=', row.id)
            .where('state', '=', 'pending')
            .execute();
          result.resumed++;
        } else {
          await this.failPending(row.id, 'node restarted before the sandbox started');
          result.failed++;
        }
      } else if (!sandbox) {
        // The sandbox is gone (host reboot, OOM of the whole sandbox...): the renter gets the
        // unused time back; past the deadline it simply expired.
        await this.endVanished(row.id);
        result.vanished++;
      } else if (sandbox.deadline.getTime() !== Number(row.expires_at)) {
        await this.syncDeadline(row.id as LeaseId);
        result.deadlines++;
      }
    }
    const known = await this.knownLeases([...sandboxes.keys()]);
    for (const orphan of sandboxes.keys()) {
      const row = known.get(orphan);
      // Left alone: a pending lease another replica is starting on the shared target, or (shared)
      // a sandbox of no lease here at all.
      if (row ? row.state === 'pending' || row.state === 'running' : this.target.shared) continue;
      // Retried every retryMs should it fail, rather than keep the node from starting.
      await this.removeSandbox(orphan as LeaseId, true);
      result.stoppedSandboxes++;
    }
    return result;
  }

  /** A pending lease of another replica on the shared target whose start may still be under way. */
  private startingElsewhere(row: LeaseRow): boolean {
    return (
      row.state === 'pending' &&
      row.replica !== '' &&
      row.replica !== this.target.replica &&
      this.now().getTime() - Number(row.created_at) < FOREIGN_PENDING_GRACE_MS
    );
  }

  /** The rows of these lease ids that exist, by id (any state, any target). */
  private async knownLeases(ids: string[]): Promise<Map<string, { state: string }>> {
    const out = new Map<string, { state: string }>();
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.db
        .selectFrom('leases')
        .select(['id', 'state'])
        .where('id', 'in', ids.slice(i, i + 500))
        .execute();
      for (const r of rows) out.set(r.id, r);
    }
    return out;
  }

  /** A paid lease that never ran: failed, everything paid refunded. */
  async failPending(id: string, reason: string): Promise<void> {
    const fresh = await this.db.selectFrom('leases').selectAll().where('id', '=', id).executeTakeFirst();
    if (fresh?.state !== 'pending') return;
    await this.end(fresh, lifecycle.fail(leaseFromRow(fresh), this.now(), reason));
  }
}

/** The driver's word that a sandbox is not there (any more). */
export function isGone(err: unknown): boolean {
  return err instanceof AlacarteError && err.code === 'lease_not_running';
}

/** An extension paid whose sandbox does not have its deadline yet: 429, retry with the same payment. */
function notYetTaken(why: string): AlacarteError {
  return new AlacarteError('rate_limited', `the extension is paid but ${why}; retry with the same token`);
}
