import type { MintLogger } from './mint-core.js';
import type { ProofState } from './types.js';

/**
 * A state change the mint committed, told after the commit (never for a rolled-back transaction).
 * Quote changes carry only the id: whoever cares reads the quote's current state, so a listener
 * never sees a state older than the store's. Proof changes carry the new states (Y → state), which
 * is all a NUT-07 answer holds; `UNSPENT` means a PENDING hold was released.
 */
export type MintEvent =
  | { kind: 'mint_quote'; id: string }
  | { kind: 'melt_quote'; id: string }
  | { kind: 'proof_state'; states: ReadonlyArray<{ Y: string; state: ProofState; witness: string | null }> };

export type MintEventListener = (event: MintEvent) => void;

/**
 * The mint's change feed (NUT-17 subscriptions listen to it). Listeners run synchronously in the
 * emitting request and must not throw or block; a throwing listener is logged and skipped.
 */
export class MintEvents {
  private readonly listeners = new Set<MintEventListener>();

  constructor(private readonly log: MintLogger) {}

  /** Adds a listener; returns the function that removes it. */
  listen(listener: MintEventListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  emit(event: MintEvent): void {
    if (this.listeners.size === 0) return;
    if (event.kind === 'proof_state' && event.states.length === 0) return;
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ err, kind: event.kind }, 'mint event listener failed');
      }
    }
  }
}
