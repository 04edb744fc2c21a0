import { AlacarteError } from '../core/errors.js';
import type { LeaseId } from '../core/ids.js';
import * as lifecycle from '../core/lease.js';
import type { Database } from '../store/database.js';
import { isPostgres } from '../store/dialect.js';
import type { Transact } from '../store/group-commit.js';
import type { Tables } from '../store/schema.js';
import type { Answer } from './answer.js';
import type { InFlight } from './in-flight.js';
import type { LeaseAccess } from './lease-access.js';
import { type LeaseRow, leaseFromRow, stateColumns } from './lease-record.js';
import type { LeaseEvent } from './lease-service.js';
import type { LeaseViews } from './lease-views.js';
import type { Reconciler } from './reconciler.js';
import type { Refunds } from './refunds.js';

export interface EndingsOptions {
  db: Database;
  clock: () => Date;
  emit: (event: LeaseEvent) => void;
  /** The service's requests in flight: one stop of a lease at a time. */
  inFlight: InFlight<Answer>;
  refunds: Refunds;
  access: LeaseAccess;
  views: LeaseViews;
  /** The service's reconciler (read late: it is made after this). */
  reconciler: () => Reconciler;
  /**
   * How a stop runs its transaction: the node's group commit on SQLite (src/store/group-commit.ts:
   * the stops, payments and `running` marks of one event-loop turn share one COMMIT, an fsync on
   * the node's thread), by default a transaction of its own (PostgreSQL: its row lock).
   */
  transact?: Transact<Tables>;
}

/**
 * How leases end: a state change made only from the state read, with its refund booked in the
 * same transaction (for stop, the reaper, the reconciler), and DELETE /v1/leases/{id} (stop), the
 * same answer and refund token on every retry.
 */
export class Endings {
  private readonly db: Database;
  private readonly now: () => Date;
  private readonly emit: (event: LeaseEvent) => void;
  private readonly inFlight: InFlight<Answer>;
  private readonly refunds: Refunds;
  private readonly authorize: LeaseAccess['authorize'];
  private readonly requireRunning: LeaseAccess['requireRunning'];
  private readonly leaseBody: LeaseViews['leaseBody'];
  private readonly reconcilerOf: () => Reconciler;
  private readonly transact: Transact<Tables>;

  constructor(options: EndingsOptions) {
    this.db = options.db;
    this.transact = options.transact ?? ((work) => this.db.transaction().execute(work));
    this.now = options.clock;
    this.emit = options.emit;
    this.inFlight = options.inFlight;
    this.refunds = options.refunds;
    const { access, views } = options;
    this.authorize = (id, credential) => access.authorize(id, credential);
    this.requireRunning = (row) => access.requireRunning(row);
    this.leaseBody = (row) => views.leaseBody(row);
    this.reconcilerOf = options.reconciler;
  }

  private get reconciler(): Reconciler {
    return this.reconcilerOf();
  }

  /**
   * Moves a lease out of its current state (only if it is still in it) and books its refund in the
   * same transaction. False when another path (reaper, stop, extension) changed it first.
   */
  async end(row: LeaseRow, state: lifecycle.LeaseState): Promise<boolean> {
    const ended = await this.db.transaction().execute((trx) => this.endIn(trx, row, state));
    if (ended) this.emitEnded(state);
    return ended;
  }

  /** end() inside a transaction the caller holds. */
  async endIn(trx: Database, row: LeaseRow, state: lifecycle.LeaseState): Promise<boolean> {
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

  /**
   * DELETE /v1/leases/{id}: ends a running lease with its unused time refunded (API.md); a lease
   * already stopped answers the same again. Throws `unauthorized`, `lease_not_running`. A sandbox
   * another replica holds is ended by it before the answer, when it is up (Reconciler.endSandbox).
   */
  async stop(id: string, credential: string | undefined): Promise<Answer> {
    const row = await this.authorize(id, credential);
    return this.inFlight.run([`stop/${row.id}`], async () => {
      await this.prepareRefund(row);
      // Read, checked and ended in one transaction, the row locked on PostgreSQL (SQLite has one
      // writer at a time already): an extension committing meanwhile is waited for and its new
      // deadline and payment seen (stopped with it in the refund), never a stale "expired".
      const ended = await this.transact(async (trx) => {
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

  /**
   * The refund a stop of `row` would book now, signed ahead (Refunds.prepare: on the mint's curve
   * threads, outside the transaction, which then holds the store for less). Only a speed-up: the
   * transaction books the refund it computes itself and signs whatever was not prepared.
   */
  private async prepareRefund(row: LeaseRow): Promise<void> {
    if (row.state !== 'running') return;
    try {
      const { refund } = lifecycle.stop(leaseFromRow(row), this.now());
      await this.refunds.prepare(row.id, refund);
    } catch {
      // Nothing was booked; the transaction below does all of it.
    }
  }

  private async stoppedAnswer(row: LeaseRow): Promise<Answer> {
    const refund = await this.refunds.show(row);
    return { status: 200, headers: {}, body: { ...(await this.leaseBody(row)), ...refund } };
  }
}
