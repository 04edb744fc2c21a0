import type { Amount } from '../../core/amount.js';
import type { PaymentKey } from '../../core/ids.js';
import type { Database } from '../../store/database.js';
import type { AuthorizationRef } from './facilitator.js';

/**
 * How long a settlement sent stays the payer's to come back for before the sweep resolves it:
 * the payer's retry window. A request answered 503 `x402_unavailable` ("send the same request
 * again") is normally retried within seconds, and that retry finds the transfer on the chain and
 * gets what it paid for; only a payer who has not come back after this long gets the payment back
 * as ecash instead. It must also exceed the longest a request may still be settling (the
 * facilitator's wait for a receipt), so that the sweep never resolves a settlement whose own
 * request is about to claim it (were it to, the claim's primary key keeps one outcome: the payer
 * then sees the refund rather than the lease). node.ts takes the larger of this and twice the
 * configured wait.
 */
export const SETTLEMENT_GRACE_MS = 5 * 60_000;

/** Most journal rows one sweep pass asks the chain about (each costs one to three RPC calls). */
export const SWEEP_BATCH = 32;

/**
 * How far past an authorization's `validBefore` (seconds) the node's clock must be before the
 * sweep treats an unexecuted one as dead: the chain compares `validBefore` with its block's
 * timestamp, which may run a little ahead of this host's clock.
 */
export const VALID_BEFORE_MARGIN_SECONDS = 120n;

/** A settlement the node is about to ask its facilitator for. */
export interface SettlementEntry {
  key: PaymentKey;
  /** CAIP-2 network and token contract of the operator's settings. */
  network: string;
  asset: string;
  /** The authorization's `from`, `nonce`, `value` (smallest units of the asset) and `validBefore` (s). */
  payer: string;
  nonce: string;
  atomic: bigint;
  validBefore: bigint;
  /** What it is worth in the node's unit at the operator's rate: what is owed back if returned. */
  amount: Amount;
}

/** A journal row as the sweep reads it. */
export interface JournalRow {
  key: PaymentKey;
  /** Enough to ask the chain whether the authorization was executed (X402Facilitator.executionOf). */
  authorization: AuthorizationRef;
  validBefore: bigint;
  /** Whole units of `unit`. */
  amount: bigint;
  unit: string;
}

/**
 * The journal of x402 settlements sent and not yet claimed (table `x402_settlements`, migration
 * 0015). The money hole it closes: the facilitator moves the payer's money on the chain before the
 * node's store claims the payment, so a request that dies in between (a crash, a settlement still
 * pending) left no trace of money the operator received. A row is committed before the facilitator
 * is asked to settle and removed in the transaction that claims the payment (`resolve`), or when
 * the authorization can no longer move money (`drop`); what is left is what the sweep resolves.
 * Nothing bearer is stored: the authorization's public fields only, never its signature.
 */
export class SettlementJournal {
  constructor(private readonly db: Database) {}

  /**
   * Writes the entry, committed when this resolves (before any settlement is sent). Idempotent per
   * key: a retry of the same payment keeps the first row (and so its amount), and moves its
   * `checked_at` to `now` (ms) so that the sweep leaves the payment to that retry for a grace period.
   */
  async open(entry: SettlementEntry, now: number): Promise<void> {
    await this.db
      .insertInto('x402_settlements')
      .values({
        key: entry.key,
        network: entry.network,
        asset: entry.asset.toLowerCase(),
        payer: entry.payer.toLowerCase(),
        nonce: entry.nonce.toLowerCase(),
        atomic: entry.atomic.toString(),
        valid_before: entry.validBefore.toString(),
        amount: entry.amount.toNumber(),
        unit: entry.amount.unit,
        created_at: now,
        checked_at: now,
      })
      .onConflict((oc) => oc.column('key').doUpdateSet({ checked_at: now }))
      .execute();
  }

  /** Removes the payment's row in `trx`: the transaction that claims it (or any, when it is dead). */
  async resolve(trx: Database, key: PaymentKey): Promise<void> {
    await trx.deleteFrom('x402_settlements').where('key', '=', key).execute();
  }

  /** Whether the payment has a row: a settlement of it was sent (or about to be) and is not claimed. */
  async has(key: PaymentKey): Promise<boolean> {
    const row = await this.db
      .selectFrom('x402_settlements')
      .select('key')
      .where('key', '=', key)
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * At most `limit` rows of `network` and `asset` last checked (or written) at or before `before`
   * (ms), those checked longest ago first. Rows of another network or asset (the operator changed
   * them) are left alone: this node's facilitator cannot ask their chain.
   */
  async due(network: string, asset: string, before: number, limit: number): Promise<JournalRow[]> {
    const rows = await this.db
      .selectFrom('x402_settlements')
      .selectAll()
      .where('network', '=', network)
      .where('asset', '=', asset.toLowerCase())
      .where('checked_at', '<=', before)
      .orderBy('checked_at')
      .orderBy('key')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      key: r.key as PaymentKey,
      authorization: { from: r.payer, nonce: r.nonce, value: r.atomic },
      validBefore: BigInt(r.valid_before),
      amount: BigInt(r.amount),
      unit: r.unit,
    }));
  }

  /** Marks the row asked about at `now` (ms): it goes to the back of the sweep's queue. */
  async checked(key: PaymentKey, now: number): Promise<void> {
    await this.db.updateTable('x402_settlements').set({ checked_at: now }).where('key', '=', key).execute();
  }
}
