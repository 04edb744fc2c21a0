import type { Logger } from '../log.js';
import type { Reconciler } from './reconciler.js';

/**
 * Ends leases at their deadline. It sleeps until the next deadline (never longer than a short
 * poll, so extensions and new leases are seen) and is never more than one poll late. Removing the
 * ended sandboxes runs behind the passes, so that many leases ending together do not make the next
 * deadlines wait for their cleanup.
 */
export class Reaper {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = true;
  private readonly removals = new Set<Promise<void>>();

  constructor(
    private readonly leases: Pick<Reconciler, 'expireDue' | 'removeSandboxes' | 'nextDeadline'>,
    private readonly log: Logger,
    private readonly pollMs = 200,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Resolves once every sandbox removal started so far has finished. */
  async idle(): Promise<void> {
    await Promise.all([...this.removals]);
  }

  private track(removal: Promise<void>): void {
    this.removals.add(removal);
    void removal.finally(() => this.removals.delete(removal));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), Math.max(0, delayMs));
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    let delay = this.pollMs;
    try {
      const ended = await this.leases.expireDue();
      if (ended.length > 0) this.track(this.leases.removeSandboxes(ended));
      const next = await this.leases.nextDeadline();
      if (next) delay = Math.min(this.pollMs, next.getTime() - Date.now());
    } catch (err) {
      this.log.error({ err: String(err) }, 'reaper pass failed');
    } finally {
      this.running = false;
      this.schedule(delay);
    }
  }
}
