/**
 * Serialises work on the same keys inside one process: a second request with the same payment
 * (or Idempotency-Key) waits for the first to finish instead of racing it, then sees its result
 * in the store. Across replicas the store's unique constraints do the same job.
 */
export class InFlight<T> {
  private readonly running = new Map<string, Promise<unknown>>();

  /** Resolves once no work holds any of `keys` (whatever its outcome). */
  async settled(keys: readonly string[]): Promise<void> {
    for (;;) {
      const busy = keys.map((k) => this.running.get(k)).find((p) => p !== undefined);
      if (!busy) return;
      await busy.catch(() => undefined);
    }
  }

  /**
   * Waits until no work holds any of `keys`, then holds them until the returned function is
   * called (call it exactly once, in a `finally`): for work whose keys are learnt midway (a
   * payment's key, known once the rail has read it).
   */
  async hold(keys: readonly string[]): Promise<() => void> {
    // Checked and taken with no await in between (not through settled(), whose own await would
    // let a second caller pass the same check).
    for (;;) {
      const busy = keys.map((k) => this.running.get(k)).find((p) => p !== undefined);
      if (!busy) break;
      await busy.catch(() => undefined);
    }
    let release = (): void => undefined;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    for (const k of keys) this.running.set(k, done);
    return () => {
      release();
      for (const k of keys) if (this.running.get(k) === done) this.running.delete(k);
    };
  }

  /** Runs `work` holding `keys` (see hold). */
  async run(keys: readonly string[], work: () => Promise<T>): Promise<T> {
    const release = await this.hold(keys);
    try {
      return await work();
    } finally {
      release();
    }
  }
}
