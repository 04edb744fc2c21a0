import type { Amount } from '../core/amount.js';

/**
 * The wallet holds less ecash (of an accepted mint and unit) than a payment needs. `elsewhere`:
 * what the wallet holds at mints the payee does not accept (`accepted`), when that was asked.
 */
export class InsufficientFundsError extends Error {
  readonly missing: Amount;

  constructor(
    readonly needed: Amount,
    readonly available: Amount,
    readonly elsewhere?: Amount,
    readonly accepted?: readonly string[],
  ) {
    const missing = needed.gte(available) ? needed.sub(available) : needed.sub(needed);
    super(`not enough ecash: need ${needed.value} ${needed.unit}, have ${available.value} ${available.unit}`);
    this.name = 'InsufficientFundsError';
    this.missing = missing;
  }
}

/** A wallet operation that the mint refused or that could not complete; `code` is the NUT error code when known. */
export class WalletOperationError extends Error {
  constructor(
    message: string,
    readonly code?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WalletOperationError';
  }
}
