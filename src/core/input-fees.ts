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
 * At a trusted mint the fee goes to someone else, so what the node bears there is bounded by what
 * a token of the price in its fewest proofs would cost (one proof per set bit of the price, at this
 * token's fee per proof): otherwise a token of many 1-sat proofs at a mint charging 1 sat per input
 * would reach the node worth nothing and still buy the lease. Such a token must carry its own fees.
 *
 * All values are whole units of one unit; `inputs` is how many proofs the token holds, given when
 * the bound applies (a trusted mint) and omitted at the node's own mint. undefined when the token
 * is worth less than the price, or when the fee left to the node exceeds that bound.
 */
export function settle(
  amount: bigint,
  fee: bigint,
  price: bigint,
  inputs?: number,
): { keep: bigint; change: bigint; feePaid: bigint; absorbed: bigint } | undefined {
  if (amount < 0n || fee < 0n || price < 0n || amount < price || fee > amount) return undefined;
  const over = amount - price;
  const feePaid = fee < over ? fee : over;
  const absorbed = fee - feePaid;
  if (inputs !== undefined && absorbed > bearableFee(fee, price, inputs)) return undefined;
  return { keep: price - absorbed, change: over - feePaid, feePaid, absorbed };
}

/**
 * The input fee of a token worth `price` in its fewest proofs (popcount of the price), at the
 * average fee per proof of a token of `inputs` proofs whose fee is `fee`; rounded up, as NUT-02
 * rounds a fee up.
 */
export function bearableFee(fee: bigint, price: bigint, inputs: number): bigint {
  if (fee === 0n) return 0n;
  if (!(inputs > 0)) return 0n;
  let fewest = 0n;
  for (let p = price; p > 0n; p >>= 1n) fewest += p & 1n;
  const n = BigInt(inputs);
  return (fee * fewest + n - 1n) / n;
}
