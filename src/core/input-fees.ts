/**
 * How a payment settles a price when its mint charges input fees (NUT-02), the one rule shared by
 * the lease service (what it records and books) and the rails (what they swap into).
 *
 * NUT-24: a token "MUST be ... greater than or equal to the amount" of the 402, and the 402's
 * amount is the price (API.md). So a token worth the price is enough, whatever its input fee: the
 * fee is paid out of what the token holds above the price, and the node bears what that does not
 * cover. At this node's own mint the fee is the operator's own revenue, so bearing it costs
 * nothing; at a trusted mint the node holds `keep` (less than the price by `absorbed`).
 *
 * All values are whole units of one unit. undefined when the token is worth less than the price,
 * or when its fees exceed its whole value (nothing could be kept: no wallet makes such a token).
 */
export function settle(
  amount: bigint,
  fee: bigint,
  price: bigint,
): { keep: bigint; change: bigint; feePaid: bigint; absorbed: bigint } | undefined {
  if (amount < 0n || fee < 0n || price < 0n || amount < price || fee > amount) return undefined;
  const over = amount - price;
  const feePaid = fee < over ? fee : over;
  const absorbed = fee - feePaid;
  return { keep: price - absorbed, change: over - feePaid, feePaid, absorbed };
}
