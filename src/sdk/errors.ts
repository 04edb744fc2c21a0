export { InsufficientFundsError, WalletOperationError } from '../wallet/errors.js';

/** An error answer of the alacarte API: `code` is the stable code of API.md (e.g. `no_capacity`). */
export class AlacarteApiError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** The whole error body, e.g. with `refund` on `start_failed`. */
    readonly body: Readonly<Record<string, unknown>> = {},
    /** Seconds to wait before trying again, from `Retry-After` (on `no_capacity`, `rate_limited`). */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'AlacarteApiError';
  }
}

/** The server asked more than the caller allowed (`maxAmount`); nothing was paid. */
export class PriceLimitError extends Error {
  constructor(
    readonly asked: number,
    readonly limit: number,
    readonly unit: string,
  ) {
    super(`the server asks ${asked} ${unit}, more than the ${limit} ${unit} allowed`);
    this.name = 'PriceLimitError';
  }
}

/** The server could not be reached (or the connection broke) even after retrying. */
export class AlacarteNetworkError extends Error {
  constructor(
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    const detail = options?.cause instanceof Error ? `: ${causeText(options.cause)}` : '';
    super(`cannot reach ${url}${detail}`, options);
    this.name = 'AlacarteNetworkError';
  }
}

function causeText(err: Error): string {
  const inner = err.cause instanceof Error ? err.cause.message : '';
  return inner || err.message;
}

/** No credential for this lease on this machine (it was rented elsewhere, or the id is wrong). */
export class UnknownLeaseError extends Error {
  constructor(readonly leaseId: string) {
    super(`no credential for lease ${leaseId} on this machine`);
    this.name = 'UnknownLeaseError';
  }
}
