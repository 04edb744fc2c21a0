import { HttpResponseError, MintOperationError, NetworkError, RateLimitError } from '@cashu/cashu-ts';
import { ApiError, Sentence } from './error-types.js';

export { Sentence };

/** The node's stable error codes (API.md "Errors"), as a renter reads them. */
export const NODE_CODES: Readonly<Record<string, string>> = {
  invalid_request: 'The node did not accept this request: refresh the page and try again.',
  invalid_token: 'The node could not read the ecash token; nothing was spent.',
  unit_mismatch: 'The ecash is in another unit than this node prices in; nothing was spent.',
  mint_not_accepted: 'The ecash is from a mint this node does not accept; nothing was spent.',
  insufficient_amount: 'The ecash was worth less than the price; nothing was spent. Top up and try again.',
  token_spent: 'That ecash was already spent elsewhere (another tab or wallet?).',
  payment_required: 'The node asked for a payment the page did not send; try again.',
  unauthorized: 'The node no longer knows this sandbox.',
  l402_invalid: 'The Lightning payment proof was not accepted; pay the invoice and try again.',
  // x402 (EVM stablecoins) is paid by other wallets than the page's; a sentence each all the same.
  x402_invalid: 'The stablecoin payment was not one the node can take; nothing was spent.',
  x402_expired: 'The stablecoin payment authorization is not valid now; nothing was spent. Sign a new one.',
  x402_settlement_failed: 'The stablecoin payment could not be settled on its chain; nothing was granted.',
  x402_unavailable: 'The node could not reach its payment chain; nothing was granted. Try again later.',
  not_found: 'The node does not have that.',
  lease_not_running: 'The sandbox has already ended.',
  lease_elsewhere:
    'This lease runs on another server of this node; commands, terminals and files reach it only there. Extend and stop work anywhere.',
  no_capacity:
    'The node has no room for this size right now; nothing was spent. Try a smaller size or again in a minute.',
  start_failed: 'The sandbox could not start; the payment came back to your wallet.',
  payload_too_large: 'That is too large for the node to take.',
  rate_limited: 'The node is busy; wait a few seconds and try again.',
  mint_unavailable:
    'The mint that issued this ecash did not answer the node; nothing was spent. Try again later.',
  store_unavailable:
    "The node's database does not answer right now; nothing was done. Try again in a few seconds.",
  replica_unavailable:
    'The server running this lease is down for the moment; nothing was charged or changed. Try again in a few seconds.',
  internal: 'The node ran into a problem of its own; try again, and tell its operator if it persists.',
  idempotency_conflict: 'The node is still busy with an earlier request; reload the page.',
  bad_gateway: 'Nothing in the sandbox answers on that port yet: start a server on it and try again.',
  gateway_timeout: 'The server in the sandbox did not answer in time.',
  // Payouts are the operator's, never the page's; a sentence each all the same.
  invalid_invoice: 'That is not a Lightning invoice the node can read.',
  amountless_invoice: 'The invoice must name an amount.',
  payout_too_large: 'That is more than the node has earned and not yet paid out.',
  payout_pending: 'An earlier payout is still on its way; try again once it has settled.',
  invoice_already_paid: 'That invoice is paid already.',
  payout_failed: 'The Lightning payment failed; nothing was paid.',
};

/** NUT error codes (cashu error_codes.md, as src/mint/errors.ts) a renter can run into at the mint. */
export const MINT_CODES: Readonly<Record<number, string>> = {
  10000: 'The mint did not accept the wallet’s request; reload the page and try again.',
  10001: 'The mint could not verify this ecash: it is not valid.',
  11001: 'This ecash was already spent: it was received before, maybe by another wallet.',
  11002: 'This ecash is being spent right now elsewhere; try again in a moment.',
  11003: 'The mint has signed this wallet’s outputs before; reload the page and try again.',
  11005: 'The mint refused an unbalanced transaction; reload the page and try again.',
  11006: 'That amount is outside what the mint allows at once: try a smaller one.',
  11010: 'This ecash is in another unit than the mint expects.',
  11013: 'The mint does not support this unit.',
  11014:
    'This token holds too many pieces for the mint to take at once: receive it in a wallet and send it again in larger pieces.',
  12001: 'This ecash is from a keyset this mint does not know: it is probably another mint’s token.',
  12002: 'This ecash is from a keyset the mint no longer accepts.',
  20001: 'The invoice is not paid yet.',
  20002: 'This invoice’s ecash was already issued.',
  20005: 'The invoice’s payment is still under way; wait a moment.',
  20007: 'The invoice expired before it was paid: ask for a new one.',
};

/** A sentence for whatever went wrong, never a library's raw message. */
export function explain(err: unknown): string {
  if (err instanceof Sentence) return err.message;
  if (err instanceof ApiError) {
    const sentence = NODE_CODES[err.code];
    if (!sentence) return `The node refused: ${err.message}.`;
    // The node's own words add detail (the price, which mint…) after the sentence.
    return err.message && err.code !== 'invalid_request' ? `${sentence} (${err.message})` : sentence;
  }
  if (err instanceof MintOperationError) {
    return MINT_CODES[err.code] ?? `The mint refused (code ${err.code}); reload the page and try again.`;
  }
  if (err instanceof RateLimitError) return 'The mint is busy; wait a few seconds and try again.';
  if (err instanceof NetworkError || err instanceof TypeError) {
    return 'The node did not answer: check your connection (or whether the node is up) and try again.';
  }
  if (err instanceof HttpResponseError)
    return `The mint answered with an error (HTTP ${err.status}); try again.`;
  return 'Something went wrong in the page; reload it and try again.';
}

/**
 * Checks a pasted token before anything is sent anywhere: a sentence for text that is no token
 * (a mistyped or cut-off paste), for another unit and for another mint.
 */
export function checkPastedToken(
  token: string,
  expected: { mint: string; unit: string },
  metadata: (token: string) => { mint: string; unit?: string },
): void {
  if (!/^cashu[AB]/.test(token)) {
    throw new Sentence('That is not a Cashu token: a token starts with “cashuA” or “cashuB”.');
  }
  let meta: { mint: string; unit?: string };
  try {
    meta = metadata(token);
  } catch {
    throw new Sentence('That token is damaged or incomplete: copy it again, all of it, and paste it.');
  }
  const same = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
  if (!same(meta.mint, expected.mint)) {
    throw new Sentence(
      `That token is from another mint (${meta.mint}); this wallet holds only ecash of ${expected.mint}. Receive it in a wallet of that mint.`,
    );
  }
  const unit = meta.unit ?? 'sat';
  if (unit !== expected.unit) {
    throw new Sentence(`That token is in ${unit}; this wallet holds ${expected.unit}.`);
  }
}
