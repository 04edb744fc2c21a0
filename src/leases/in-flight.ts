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

  async run(keys: readonly string[], work: (joined: boolean) => Promise<T>): Promise<T> {
    let joined = false;
    for (;;) {
      const busy = keys.map((k) => this.running.get(k)).find((p) => p !== undefined);
      if (!busy) break;
      joined = true;
      await busy.catch(() => undefined);
    }
    const promise = work(joined);
    for (const k of keys) this.running.set(k, promise);
    try {
      return await promise;
    } finally {
      for (const k of keys) if (this.running.get(k) === promise) this.running.delete(k);
    }
  }
}
