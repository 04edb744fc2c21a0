import { type Kysely, sql, type Transaction } from 'kysely';
import type { WalSync } from './wal-sync.js';

/**
 * Runs `work` in a store transaction; resolves with its result once that transaction is durably
 * committed, rejects with `work`'s error (nothing of it stored) or the store's.
 */
export type Transact<DB> = <T>(work: (trx: Transaction<DB>) => Promise<T>) => Promise<T>;

/** Most pieces of work one transaction holds; more wait for the next (keeps a transaction short). */
export const MAX_WORK_PER_COMMIT = 256;

export interface GroupCommitOptions {
  /**
   * true: the work of one event-loop turn shares one transaction (SQLite: one connection, every
   * COMMIT an fsync on the node's thread). false: each piece of work is a transaction of its own
   * (PostgreSQL: a pool of connections commits in parallel, and a batch there would make one
   * request's lock wait or deadlock fail every other request of its batch).
   */
  grouped: boolean;
  /**
   * Whether the connection is still inside a transaction (better-sqlite3's `inTransaction`). After
   * a piece of work, false means the engine rolled the whole transaction back by itself (SQLite
   * does on I/O errors and a full disk): the batch is then failed rather than continued outside any
   * transaction.
   */
  inTransaction?: () => boolean;
  /**
   * SQLite on a file: each batch's COMMIT without its fsync on the node's thread, the log synced in
   * libuv's pool before any caller hears back (wal-sync.ts). Callers are told nothing earlier than
   * without it; only the node's thread no longer waits for the disk.
   */
  walSync?: WalSync;
}

interface Pending<DB> {
  work: (trx: Transaction<DB>) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** What a piece of work of a batch came to before the COMMIT. */
type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

/**
 * Group commit for the store's hot transactions (a lease's payment taken and recorded, its
 * `running` mark): the pieces of work handed in during one event-loop turn run in one
 * transaction, each inside a savepoint of its own, and are committed by one COMMIT.
 *
 * Each piece is still all-or-nothing: one that throws is rolled back to its savepoint alone (a
 * proof already spent fails its own payment, not its neighbours'). No caller hears back before the
 * COMMIT has returned — not even one whose work failed — so whatever a caller is told is on disk;
 * a crash before the COMMIT stores none of the batch and has answered none of it. Should the
 * COMMIT itself fail (I/O, disk full), every caller of the batch gets that error and nothing of
 * the batch is stored.
 *
 * Rules for `work`, as for any transaction on a one-connection store: use only `trx` (a query on
 * the Kysely instance waits for the connection this batch holds: a deadlock), and never wait for
 * another `transact` from inside it. The queue holds at most one entry per request under way.
 */
export class GroupCommit<DB> {
  /** Whether work is grouped (see GroupCommitOptions.grouped). */
  readonly grouped: boolean;
  private readonly inTransaction: () => boolean;
  private readonly walSync: WalSync | undefined;
  private queue: Array<Pending<DB>> = [];
  private flushing = false;

  constructor(
    private readonly db: Kysely<DB>,
    options: GroupCommitOptions,
  ) {
    this.grouped = options.grouped;
    this.inTransaction = options.inTransaction ?? (() => true);
    this.walSync = options.walSync;
  }

  /** Transact (above), grouped with the other work of this event-loop turn when `grouped`. */
  readonly transact: Transact<DB> = <T>(work: (trx: Transaction<DB>) => Promise<T>): Promise<T> => {
    if (!this.grouped) return this.db.transaction().execute(work);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      // Later in this turn's check phase: the requests read in this turn's poll phase join first.
      if (this.queue.length === 1 && !this.flushing) setImmediate(() => void this.flush());
    });
  };

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_WORK_PER_COMMIT);
        const outcomes: Outcome[] = [];
        try {
          await this.commitBatch(async (trx) => {
            for (const pending of batch) outcomes.push(await this.runOne(trx, pending));
          });
        } catch (err) {
          // BEGIN, a savepoint's rollback or the COMMIT failed: nothing of the batch is stored.
          for (const [i, pending] of batch.entries()) {
            const own = outcomes[i];
            pending.reject(own && !own.ok ? own.err : err);
          }
          continue;
        }
        for (const [i, pending] of batch.entries()) {
          const outcome = outcomes[i];
          if (outcome?.ok) pending.resolve(outcome.value);
          else pending.reject(outcome ? outcome.err : new Error('work left out of its batch'));
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /**
   * One transaction of `work`, durable when this resolves: with walSync, the connection is held
   * from before the pragma that relaxes the COMMIT to after the one that restores it (SQLite
   * refuses the change inside a transaction; no other transaction may run relaxed), and the log's
   * fsync is awaited once the connection is free for the next batch.
   */
  private async commitBatch(work: (trx: Transaction<DB>) => Promise<void>): Promise<void> {
    const walSync = this.walSync;
    if (!walSync) return this.db.transaction().execute(work);
    await this.db.connection().execute((conn) => walSync.relaxed(() => conn.transaction().execute(work)));
    // With the connection free: the next batch runs meanwhile, its own fsync shared or next.
    await walSync.sync();
  }

  /** One piece of work inside its savepoint: released when it succeeds, rolled back when it throws. */
  private async runOne(trx: Transaction<DB>, pending: Pending<DB>): Promise<Outcome> {
    await sql`savepoint group_commit_work`.execute(trx);
    let outcome: Outcome;
    try {
      outcome = { ok: true, value: await pending.work(trx) };
    } catch (err) {
      outcome = { ok: false, err };
    }
    if (!this.inTransaction()) {
      // The engine ended the transaction itself: what ran before is gone, and anything after
      // would commit statement by statement. Fail the batch.
      throw outcome.ok ? new Error('the store ended the transaction') : outcome.err;
    }
    if (outcome.ok) {
      await sql`release savepoint group_commit_work`.execute(trx);
    } else {
      await sql`rollback to savepoint group_commit_work`.execute(trx);
      await sql`release savepoint group_commit_work`.execute(trx);
    }
    return outcome;
  }
}
