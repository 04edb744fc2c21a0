import type { LeaseId } from '../core/ids.js';
import type { Database } from '../store/database.js';
import { stateColumns } from './lease-record.js';

/** Most leases one transaction marks; more wait for the next (keeps a transaction short). */
export const MAX_MARKS_PER_COMMIT = 256;

interface Mark {
  id: LeaseId;
  startedAt: Date;
  expiresAt: Date;
  /** The sandbox's published ports, as stored in `ports_json`. */
  ports: Readonly<Record<number, string>>;
  resolve: (marked: boolean) => void;
  reject: (err: unknown) => void;
}

/**
 * Moves leases whose sandbox has started from `pending` to `running` in the store, the leases whose
 * starts finish in the same event-loop turn in one transaction: one commit (an fsync on SQLite,
 * a round trip on PostgreSQL) for a burst's many starts instead of one each, on the node's thread.
 *
 * Each caller hears back only once its row is durably committed, exactly as with a statement of
 * its own: a crash before the commit leaves the lease pending, which the reconciler settles at
 * start-up as it always did (the sandbox found running, or the lease failed with a full refund).
 * If the transaction fails, every lease of it is reported as failed (the caller refunds it), none
 * as marked. The queue holds at most one entry per start under way (bounded by capacity).
 */
export class RunningMarks {
  private queue: Mark[] = [];
  private flushing = false;

  constructor(private readonly db: Database) {}

  /**
   * Marks lease `id` running from `startedAt` to `expiresAt` with `ports`. Resolves true once
   * committed, false when the lease was no longer pending (another path ended it meanwhile);
   * rejects with the store's error.
   */
  mark(
    id: LeaseId,
    startedAt: Date,
    expiresAt: Date,
    ports: Readonly<Record<number, string>>,
  ): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id, startedAt, expiresAt, ports, resolve, reject });
      if (this.queue.length === 1 && !this.flushing) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_MARKS_PER_COMMIT);
        try {
          const marked = await this.db.transaction().execute(async (trx) => {
            const done: boolean[] = [];
            for (const m of batch) {
              const updated = await trx
                .updateTable('leases')
                .set({
                  ...stateColumns({ kind: 'running', startedAt: m.startedAt, expiresAt: m.expiresAt }),
                  ports_json: JSON.stringify(m.ports),
                })
                .where('id', '=', m.id)
                .where('state', '=', 'pending')
                .executeTakeFirst();
              done.push(updated.numUpdatedRows === 1n);
            }
            return done;
          });
          for (const [i, m] of batch.entries()) m.resolve(marked[i] === true);
        } catch (err) {
          for (const m of batch) m.reject(err);
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}
