/**
 * The x402 rail's tables (migrations 0014-x402-payments, 0015-x402-settlements). Amounts are whole
 * units of the node's unit; times are ms since the epoch.
 */
export interface X402Tables {
  x402_payments: {
    /** The payment key (sha256 of the chain, asset, payer and nonce): one authorization, one row. */
    key: string;
    /** CAIP-2 network the payment settled on. */
    network: string;
    /** The settlement's transaction hash (public chain data). */
    tx: string;
    /** What the authorization moved, in the asset's smallest units (a decimal string: up to uint256). */
    atomic: string;
    /** What it is worth in the node's unit at the operator's rate (rounded down). */
    amount: number | bigint;
    unit: string;
    /** 'claimed' (bought a lease or extension) or 'returned' (handed back as ecash of the own mint). */
    outcome: 'claimed' | 'returned';
    created_at: number | bigint;
  };
  /**
   * Settlements sent (or about to be) and not claimed yet: the journal the sweep resolves
   * (settlement-journal.ts). Public chain data only, never the authorization's signature.
   */
  x402_settlements: {
    /** The payment key, as in `x402_payments`. */
    key: string;
    /** CAIP-2 network and token contract (lower case) the authorization is for. */
    network: string;
    asset: string;
    /** The authorization's `from` and `nonce` (lower case hex). */
    payer: string;
    nonce: string;
    /** Its `value`, smallest units of the asset (decimal string: up to uint256). */
    atomic: string;
    /** Its `validBefore`, seconds since the epoch (decimal string: up to uint256). */
    valid_before: string;
    /** What it is worth in the node's unit at the operator's rate (rounded down): the refund if returned. */
    amount: number | bigint;
    unit: string;
    created_at: number | bigint;
    /** When the sweep last asked the chain about it (created_at until then). */
    checked_at: number | bigint;
  };
}
