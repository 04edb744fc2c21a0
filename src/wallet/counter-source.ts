import type { CounterRange, CounterSource } from '@cashu/cashu-ts';
import type { WalletStore } from './wallet-store.js';

/**
 * cashu-ts's CounterSource over the wallet file: every reservation is on disk before cashu-ts
 * derives a secret from it, so a counter is never used twice (the mint would refuse outputs it has
 * signed before) and every output the mint may have signed lies in a recorded range that NUT-09
 * restore can scan. Reservations made while an operation is active are recorded on it.
 */
export class StoreCounterSource implements CounterSource {
  /** The pending operation that reservations belong to, if any. */
  activeOp: string | undefined;

  constructor(private readonly store: WalletStore) {}

  async reserve(keysetId: string, n: number): Promise<CounterRange> {
    const r = this.store.reserveCounters(keysetId, n, this.activeOp);
    return { start: r.start, count: r.count };
  }

  async reserveAt(keysetId: string, start: number, count: number): Promise<CounterRange> {
    const next = this.store.nextCounter(keysetId);
    if (start < next) throw new Error(`counter ${start} of keyset ${keysetId} was already used`);
    this.store.advanceCounter(keysetId, start);
    const r = this.store.reserveCounters(keysetId, count, this.activeOp);
    return { start: r.start, count: r.count };
  }

  async advanceToAtLeast(keysetId: string, minNext: number): Promise<void> {
    this.store.advanceCounter(keysetId, minNext);
  }

  async snapshot(): Promise<Record<string, number>> {
    return this.store.counterSnapshot();
  }
}
