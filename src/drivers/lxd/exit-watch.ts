import type { DriverState } from './driver-state.js';
import { KEY } from './instance-record.js';
import type { PortRelays } from './port-relays.js';

/** How often watch() compares what runs with what ran; onExit follows an end within this long. */
const WATCH_INTERVAL_MS = 500;

/**
 * watch(): the ends of the instances this process knows (started or listed here), found by
 * comparing, every WATCH_INTERVAL_MS, what runs in LXD with what ran: an instance ends on its own
 * at its deadline (its init), on whichever member, with nothing to tell the node.
 */
export class ExitWatch {
  private readonly watchers = new Set<(leaseId: string) => void>();
  private watchTimer: NodeJS.Timeout | undefined;
  /** A poll is under way: the next tick skips rather than list LXD a second time meanwhile. */
  private polling = false;

  constructor(
    private readonly s: DriverState,
    private readonly relays: PortRelays,
  ) {}

  /** The driver's watch() (compute-driver.ts). */
  watch(onExit: (leaseId: string) => void): () => void {
    this.watchers.add(onExit);
    if (!this.watchTimer) {
      this.watchTimer = setInterval(() => void this.poll(), WATCH_INTERVAL_MS);
      this.watchTimer.unref();
    }
    return () => {
      this.watchers.delete(onExit);
      if (this.watchers.size === 0 && this.watchTimer) {
        clearInterval(this.watchTimer);
        this.watchTimer = undefined;
      }
    };
  }

  private async poll(): Promise<void> {
    if (this.polling || this.s.known.size === 0) return;
    this.polling = true;
    try {
      const running = new Set(
        (await this.s.instances()).filter((i) => i.status === 'Running').map((i) => i.config[KEY.lease]),
      );
      for (const leaseId of [...this.s.known]) {
        if (running.has(leaseId) || this.s.starting.has(leaseId)) continue;
        this.s.known.delete(leaseId);
        // Its relays lead nowhere now; the replica that stops it may be another one.
        this.relays.unpublish(leaseId);
        for (const w of this.watchers) w(leaseId);
      }
    } catch (e) {
      this.s.logger.warn(`alacarte: LXD watch could not list instances: ${(e as Error).message}`);
    } finally {
      this.polling = false;
    }
  }

  /** Stops the polling and forgets every watcher (the driver's close()). */
  close(): void {
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = undefined;
    this.watchers.clear();
  }
}
