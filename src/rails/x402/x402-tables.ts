/** The x402 rail's table (migration 0014-x402-payments). Amounts are whole units of the node's unit. */
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
}
