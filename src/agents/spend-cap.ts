/**
 * The spend cap of `alacarte mcp` (API.md "Agents": "paying from the local wallet within a spend
 * cap the user sets, per call and in total"). Amounts are whole units of the wallet (sat), as
 * bigint. The total counts what left the wallet, measured as its balance before and after each paid
 * call (price, mint fees, change that did not come back), for the life of the process; refunds of
 * stopped leases do not give room back, so the cap bounds what an agent can spend, whatever it does.
 * Calls that touch the wallet run one at a time (`exclusive`), so no two measures overlap and the
 * wallet's lock is taken by one call at once.
 */
export class SpendCap {
  private spentSoFar = 0n;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    /** The most one call may pay. */
    readonly perCall: bigint,
    /** The most all calls together may pay. */
    readonly total: bigint,
  ) {
    if (perCall < 0n || total < 0n) throw new RangeError('a spend cap is not negative');
  }

  /** What left the wallet through paid calls so far. */
  get spent(): bigint {
    return this.spentSoFar;
  }

  /** The most the next call may pay: its own cap, or what is left of the total if less. */
  allowance(): bigint {
    const left = this.total - this.spentSoFar;
    const room = left < 0n ? 0n : left;
    return room < this.perCall ? room : this.perCall;
  }

  /** Books what a paid call took out of the wallet (a gain, from change, books nothing). */
  record(outflow: bigint): void {
    if (outflow > 0n) this.spentSoFar += outflow;
  }

  /** Runs `work` after every earlier call given here has ended (whether or not it failed). */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
