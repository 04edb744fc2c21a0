import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../../src/log.js';
import { SettlementSweeper } from '../../../../src/rails/x402/settlement-sweeper.js';
import type { SweepOutcome } from '../../../../src/rails/x402/x402-rail.js';

const nothing: SweepOutcome = { returned: 0, claimedElsewhere: 0, dropped: 0, left: 0, unreachable: false };

describe('SettlementSweeper', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sweeps every interval once started, never two passes at once, and not after stop', async () => {
    let passes = 0;
    let finish: () => void = () => {};
    const sweeper = new SettlementSweeper(
      () => {
        passes++;
        return new Promise<SweepOutcome>((resolve) => {
          finish = () => resolve(nothing);
        });
      },
      createLogger({ level: 'silent' }),
      1000,
    );
    await vi.advanceTimersByTimeAsync(5000);
    expect(passes).toBe(0);
    sweeper.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(passes).toBe(1);
    // The pass is still under way: the next ticks wait for it.
    await vi.advanceTimersByTimeAsync(3000);
    expect(passes).toBe(1);
    finish();
    await vi.advanceTimersByTimeAsync(1000);
    expect(passes).toBe(2);
    // stop() waits for the pass under way, then nothing more runs.
    let stopped = false;
    const stopping = sweeper.stop().then(() => {
      stopped = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    finish();
    await stopping;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(passes).toBe(2);
  });

  it('logs a failed pass and sweeps again at the next tick, throwing nothing', async () => {
    const logged: string[] = [];
    const logger = createLogger({ level: 'silent' });
    logger.error = ((_obj: unknown, message: string) => {
      logged.push(message);
    }) as typeof logger.error;
    let passes = 0;
    const sweeper = new SettlementSweeper(
      async () => {
        passes++;
        if (passes === 1) throw new Error('the store is gone');
        return nothing;
      },
      logger,
      1000,
    );
    sweeper.start();
    await vi.advanceTimersByTimeAsync(2000);
    expect(passes).toBe(2);
    expect(logged).toEqual(['x402 settlement sweep failed']);
    await sweeper.stop();
  });
});
