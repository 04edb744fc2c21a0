/**
 * The runtime's `delete --force` of several containers by one process: crun's `delete --regex`
 * (crun(1)). Each delete is a program start (its loader and ~15 shared libraries, ~5 ms of CPU on
 * this host, half of it before it does anything: bench/PROFILES.md, session 19); under load the
 * removals come several at a time. Deletes asked for while one runs (or in the same event-loop
 * turn) go together in the next, up to `max` at once. A batch that fails is redone one container
 * at a time, so that each caller hears its own container's outcome.
 */
export class BatchedDelete {
  private readonly waiting = new Map<string, { resolve: () => void; reject: (err: unknown) => void }[]>();
  private running = false;

  /**
   * @param deleteMany deletes the containers of these ids in one runtime call; false (or a throw)
   *   when the call failed, for whatever reason.
   * @param deleteOne deletes one container; throws with the runtime's message. A container the
   *   runtime does not know is no error (either way).
   * @param max the most ids in one call.
   */
  constructor(
    private readonly deleteMany: (ids: readonly string[]) => Promise<boolean>,
    private readonly deleteOne: (id: string) => Promise<void>,
    private readonly max = 32,
  ) {}

  /** Deletes the container `id`; resolves once it is gone (or was unknown), rejects with the runtime's error. */
  delete(id: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const callers = this.waiting.get(id);
      if (callers) callers.push({ resolve, reject });
      else this.waiting.set(id, [{ resolve, reject }]);
      if (this.running) return;
      this.running = true;
      setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    while (this.waiting.size > 0) {
      const batch = [...this.waiting].slice(0, this.max);
      for (const [id] of batch) this.waiting.delete(id);
      const together =
        batch.length > 1 && (await this.deleteMany(batch.map(([id]) => id)).catch(() => false));
      await Promise.all(
        batch.map(async ([id, callers]) => {
          try {
            if (!together) await this.deleteOne(id);
            for (const c of callers) c.resolve();
          } catch (err) {
            for (const c of callers) c.reject(err);
          }
        }),
      );
    }
    this.running = false;
  }
}

/** An extended regular expression (POSIX, as crun compiles it) matching exactly the given ids. */
export function exactIds(ids: readonly string[]): string {
  return `^(${ids.map((id) => id.replace(/[.[\]()*+?{}|^$\\]/g, '\\$&')).join('|')})$`;
}
