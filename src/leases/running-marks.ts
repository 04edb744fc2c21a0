import type { LeaseId } from '../core/ids.js';
import type { Transact } from '../store/group-commit.js';
import type { Tables } from '../store/schema.js';
import { stateColumns } from './lease-record.js';

/**
 * Moves leases whose sandbox has started from `pending` to `running` in the store, through a
 * grouped `transact` (src/store/group-commit.ts): the starts that finish in the same event-loop
 * turn share one commit (an fsync on SQLite, a round trip on PostgreSQL) with each other and, on
 * SQLite, with the payments taken in that turn.
 *
 * Each caller hears back only once its row is durably committed, exactly as with a transaction of
 * its own: a crash before the commit leaves the lease pending, which the reconciler settles at
 * start-up as it always did (the sandbox found running, or the lease failed with a full refund).
 * If the transaction fails, every lease of it is reported as failed (the caller refunds it), none
 * as marked.
 */
export class RunningMarks {
  constructor(private readonly transact: Transact<Tables>) {}

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
    return this.transact(async (trx) => {
      const updated = await trx
        .updateTable('leases')
        .set({
          ...stateColumns({ kind: 'running', startedAt, expiresAt }),
          ports_json: JSON.stringify(ports),
        })
        .where('id', '=', id)
        .where('state', '=', 'pending')
        .executeTakeFirst();
      return updated.numUpdatedRows === 1n;
    });
  }
}
