import { AlacarteError } from '../core/errors.js';

/**
 * Bounds how many of one kind of session (execs, terminals) a lease holds at once. Each costs the
 * host a runtime process outside the tenant's cgroup, so a lease must not open them without end.
 */
export class PerLeaseLimit {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly what: string,
  ) {}

  /** Takes a slot or throws `rate_limited`; the returned function gives it back (once). */
  take(leaseId: string): () => void {
    const n = this.open.get(leaseId) ?? 0;
    if (n >= this.max) {
      throw new AlacarteError('rate_limited', `at most ${this.max} ${this.what} at once per lease`, {
        headers: { 'retry-after': '1' },
      });
    }
    this.open.set(leaseId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(leaseId) ?? 1) - 1;
      if (left <= 0) this.open.delete(leaseId);
      else this.open.set(leaseId, left);
    };
  }
}
