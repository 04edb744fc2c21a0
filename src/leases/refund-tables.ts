/**
 * Tables of money per mint (migration 0004-refunds). Amounts are whole units; no column holds a
 * token.
 */
export interface RefundTables {
  /** How each ended lease's refund was split over mints; the rows add up to `leases.refunded`. */
  lease_refunds: {
    lease_id: string;
    /** The mint it is paid from, as the rail named it when the refund was booked. */
    mint_url: string;
    /** Order of the lease's refund tokens in the answer (0 first). */
    position: number;
    amount: number;
  };
  /** Payments a mint took that bought nothing (the lease ended meanwhile), returned to the payer. */
  bounced_payments: {
    /** The payment's key (sha256 over its proofs' Y points), as in `payments`. */
    key: string;
    lease_id: string;
    mint_url: string;
    /** What the token was worth. */
    amount: number;
    /** What the returned token is worth (the mint's input fees taken off). */
    returned: number;
    created_at: number;
  };
}
