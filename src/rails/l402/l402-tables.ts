/** The L402 rail's table (migration 0011-l402-payments). Amounts are whole units. */
export interface L402Tables {
  l402_payments: {
    /** hex payment hash of the invoice (primary key: claimed once). */
    payment_hash: string;
    /** The payment key the lease service knows the payment by. */
    key: string;
    amount: number | bigint;
    unit: string;
    /** 'claimed' (bought a lease or extension) or 'returned' (handed back as ecash). */
    outcome: 'claimed' | 'returned';
    created_at: number | bigint;
  };
}
