/**
 * How a payout's payment stands, as its payer says. `fee` is what it cost on top of the invoice's
 * amount (whole sat); only a definite failure is 'failed' (nothing was or will be paid): anything
 * unknown stays 'pending' and is asked again.
 */
export type PayoutOutcome =
  | { state: 'paid'; fee: bigint }
  | { state: 'pending' }
  | { state: 'failed'; reason: string };
