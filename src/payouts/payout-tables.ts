import type { ColumnType } from 'kysely';

/** The payouts table (migration 0010-payouts). Amounts are whole units (sat). */
export interface PayoutTables {
  payouts: {
    id: string;
    /** 'own' (the node's mint, paid by its Lightning backend) or a trusted mint's URL as configured. */
    source: string;
    /** The BOLT11 invoice paid (the operator's own; no tenant data). */
    request: string;
    /** hex payment hash of `request`. */
    payment_hash: string;
    /** The NUT-05 melt quote at the trusted mint; null for the own mint. */
    melt_quote_id: string | null;
    /** What the invoice asks. */
    amount: number;
    /** Most the payment may cost on top (routing fee budget, or the melt quote's fee reserve). */
    fee_reserve: number;
    /** Value of the proofs melted at a trusted mint; null for the own mint. */
    inputs: number | null;
    /** What it cost on top of `amount` once paid (routing fee; at a trusted mint also its input fees). */
    fee: number | null;
    state: PayoutState;
    /** Why it failed, as the payer said. */
    reason: string | null;
    /** Seconds since the epoch. */
    created_at: number;
    resolved_at: number | null;
    /**
     * 1 once every proof of this trusted-mint payout's change was found spent (or it had none):
     * later payouts no longer look for it (migration 0013-payout-change-spent). 0 until then.
     */
    change_spent: ColumnType<number, number | undefined, number>;
  };
}

export type PayoutState = 'pending' | 'paid' | 'failed';
