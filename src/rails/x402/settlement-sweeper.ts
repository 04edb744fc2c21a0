import type { Logger } from '../../log.js';
import type { SweepOutcome } from './x402-rail.js';

/** How often the node sweeps its x402 settlement journal (ms): a fraction of the grace period. */
export const SWEEP_INTERVAL_MS = 60_000;

/**
 * Runs the x402 settlement sweep (X402Rail.sweepSettlements) every `intervalMs` while started: one
 * pass at a time, never overlapping, a failed pass logged and tried again at the
 * next tick: it never throws into the node. The timer is unref'd: it never keeps the process
 * alive. Replicas each run their own; the store's claim keeps one outcome per payment.
 */
export class SettlementSweeper {
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;

  constructor(
    private readonly sweep: () => Promise<SweepOutcome>,
    private readonly log: Logger,
    private readonly intervalMs = SWEEP_INTERVAL_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass under way (so the store is not closed under it). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.pass;
  }

  private tick(): void {
    if (this.pass) return;
    this.pass = this.sweep()
      .then(() => undefined)
      .catch((err: unknown) => {
        // The store's error (the chain's are handled inside the pass, never quoted: see there).
        this.log.error({ err: String(err) }, 'x402 settlement sweep failed');
      })
      .finally(() => {
        this.pass = undefined;
      });
  }
}
