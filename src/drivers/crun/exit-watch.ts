import type { SandboxRef } from '../compute-driver.js';
import type { DriverState } from './driver-state.js';

/** How often watch() looks whether the inits of the watched sandboxes still run (a few /proc reads each). */
const EXIT_POLL_MS = 500;

/** Shortest time between two scans for sandboxes that ended on their own after starts (reapEnded). */
const REAP_GAP_MS = 500;

/**
 * Noticing sandboxes whose init has ended: watch()'s poll reports them to the node's listeners, and
 * a scan after starts removes what those that ended on their own still hold.
 */
export class ExitWatch {
  private readonly exitListeners = new Set<(leaseId: string) => void>();
  private exitTimer: NodeJS.Timeout | undefined;
  /** A reapEnded() is queued. */
  private reapScheduled = false;
  /** When (Date.now()) the last reapEnded() began. */
  private lastReap = 0;
  /** close() has begun: no scan for ended sandboxes starts any more. */
  private closing = false;

  /**
   * @param stop removes a sandbox that ended on its own (the driver's stop()).
   */
  constructor(
    private readonly s: DriverState,
    private readonly stop: (sandbox: SandboxRef) => Promise<void>,
  ) {}

  /**
   * Polls the inits of the watched sandboxes (EXIT_POLL_MS): Node offers no pidfd, and an init is
   * not our child (the runtime detaches it), so nothing would tell us of its end otherwise. A
   * sandbox stays watched until its end is reported, even when stop() or the clean-up after starts
   * removed it first, so no death goes unreported.
   */
  watch(onExit: (leaseId: string) => void): () => void {
    this.exitListeners.add(onExit);
    if (this.exitTimer === undefined) {
      this.exitTimer = setInterval(() => this.reportExits(), EXIT_POLL_MS);
      this.exitTimer.unref();
    }
    return () => {
      this.exitListeners.delete(onExit);
      if (this.exitListeners.size === 0 && this.exitTimer !== undefined) {
        clearInterval(this.exitTimer);
        this.exitTimer = undefined;
      }
    };
  }

  private reportExits(): void {
    for (const id of [...this.s.watched]) {
      if (this.s.starting.has(id) || this.s.initPid(id) !== undefined) continue;
      this.s.watched.delete(id);
      for (const listener of this.exitListeners) {
        try {
          listener(id);
        } catch (e) {
          this.s.log.warn(`alacarte: an exit listener failed for ${id}: ${String(e)}`);
        }
      }
    }
  }

  /**
   * Removes what sandboxes that ended on their own (deadline) still hold: their writable layer is
   * memory. Runs after starts (at most once per REAP_GAP_MS), off their path; list() does the same
   * for sandboxes of earlier processes.
   */
  private async reapEnded(): Promise<void> {
    for (const id of [...this.s.live.keys()]) {
      if (this.s.starting.has(id) || this.s.initPid(id) !== undefined) continue;
      await this.stop({ leaseId: id }).catch((e: unknown) =>
        this.s.log.warn(`alacarte: cleaning up ended sandbox ${id} failed: ${String(e)}`),
      );
    }
  }

  /**
   * Queues a reapEnded() after a start (its end, failed or not). One scan of every sandbox per
   * REAP_GAP_MS at most, however many starts end meanwhile: a scan per start made a burst's cost
   * grow with its square (100 starts, ~10,000 /proc reads), and one per event-loop turn still read
   * /proc ~2,500 times in a burst of 100.
   */
  scheduleReap(): void {
    if (!this.reapScheduled && !this.closing) {
      this.reapScheduled = true;
      const run = () => {
        this.reapScheduled = false;
        this.lastReap = Date.now();
        if (!this.closing) void this.reapEnded();
      };
      const wait = this.lastReap + REAP_GAP_MS - Date.now();
      if (wait <= 0) setImmediate(run);
      else setTimeout(run, wait).unref();
    }
  }

  /** Stops the poll and the scans and forgets the listeners (the driver's close()). */
  close(): void {
    this.closing = true;
    if (this.exitTimer !== undefined) clearInterval(this.exitTimer);
    this.exitTimer = undefined;
    this.exitListeners.clear();
  }
}
