import type { LeaseId } from '../core/ids.js';
import type { ComputeDriver } from '../drivers/compute-driver.js';
import type { Logger } from '../log.js';

export interface TeardownQueueOptions {
  driver: ComputeDriver;
  /**
   * Removes a sandbox (driver.stop()); false when it failed, in which case the caller has taken it
   * over to retry (Reconciler.removeSandbox). Never rejects.
   */
  remove: (id: LeaseId) => Promise<boolean>;
  log: Logger;
  /** Removals at once (default 2): each spawns the runtime and unmounts; more only slows the answers. */
  concurrency?: number;
}

/**
 * Ends the sandboxes of stopped leases in two steps: halt() before the answer (every process killed,
 * no process spawned: the refunded lease uses no compute from then on), removal (runtime delete,
 * unmounts, tens of ms of process spawns) afterwards, off the request path, a few at a time.
 *
 * Nothing here needs to survive a crash: the store has the lease ended before halt() is called, and
 * at start-up the reconciler removes every sandbox without a running lease (Reconciler.reconcile,
 * through the driver's list()). The queue holds at most one entry per sandbox on the host, so it is
 * bounded by the host's capacity.
 */
export class TeardownQueue {
  private readonly driver: ComputeDriver;
  private readonly remove: (id: LeaseId) => Promise<boolean>;
  private readonly log: Logger;
  private readonly concurrency: number;
  private readonly waiting: LeaseId[] = [];
  private readonly queued = new Set<LeaseId>();
  private workers = 0;
  private readonly idle = new Set<() => void>();

  constructor(options: TeardownQueueOptions) {
    this.driver = options.driver;
    this.remove = options.remove;
    this.log = options.log;
    this.concurrency = options.concurrency ?? 2;
  }

  /**
   * Nothing of the sandbox runs once this resolves; its removal is queued. With a driver that cannot
   * halt, or when halting fails, waits for the removal itself (which the caller's retry covers on
   * failure). Never rejects.
   */
  async end(id: LeaseId): Promise<void> {
    if (this.driver.halt) {
      try {
        await this.driver.halt({ leaseId: id });
        this.enqueue(id);
        return;
      } catch (err) {
        this.log.warn({ err: String(err), lease: id }, 'could not halt a sandbox; removing it now');
      }
    }
    await this.remove(id);
  }

  /** Queues the removal of a sandbox whose processes have ended (or that may be removed as it is). */
  enqueue(id: LeaseId): void {
    if (this.queued.has(id)) return;
    this.queued.add(id);
    this.waiting.push(id);
    if (this.workers < this.concurrency) {
      this.workers++;
      void this.work();
    }
  }

  /** How many removals are queued or under way. */
  get size(): number {
    return this.queued.size;
  }

  /** Resolves once every queued removal has been tried. */
  drained(): Promise<void> {
    if (this.queued.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  private async work(): Promise<void> {
    try {
      for (let id = this.waiting.shift(); id !== undefined; id = this.waiting.shift()) {
        // Never rejects: a failed removal is the reconciler's to retry.
        await this.remove(id).catch(() => false);
        this.queued.delete(id);
      }
    } finally {
      this.workers--;
      if (this.queued.size === 0) {
        for (const resolve of this.idle) resolve();
        this.idle.clear();
      }
    }
  }
}
