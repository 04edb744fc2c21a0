/**
 * The stable error codes of the HTTP contract (API.md). One error type carries a code, the HTTP
 * status that goes with it and an optional cause; `http/errors.ts` is the one place that turns it
 * into an answer.
 */
export const ERROR_STATUS = {
  invalid_request: 400,
  invalid_token: 400,
  unit_mismatch: 400,
  mint_not_accepted: 400,
  insufficient_amount: 400,
  token_spent: 400,
  invalid_invoice: 400,
  amountless_invoice: 400,
  unauthorized: 401,
  /** An L402 credential this node did not issue, tampered with, or with the wrong preimage. */
  l402_invalid: 401,
  /**
   * An x402 payment this node cannot take as it is: malformed, another scheme, network, asset or
   * payee, or not signed by its payer (rails/x402). Nothing is settled.
   */
  x402_invalid: 400,
  /** An x402 authorization outside its validity window (validAfter, validBefore). Nothing is settled. */
  x402_expired: 400,
  /** The x402 facilitator could not settle the payment (no funds, the transfer reverted): no lease. */
  x402_settlement_failed: 402,
  /** The chain of the x402 rail did not answer: nothing is granted; try again. */
  x402_unavailable: 503,
  payment_required: 402,
  not_found: 404,
  lease_not_running: 409,
  /** The lease's sandbox is held by another replica, which alone serves exec, attach, files and ports. */
  lease_elsewhere: 421,
  idempotency_conflict: 409,
  payout_too_large: 409,
  payout_pending: 409,
  invoice_already_paid: 409,
  payload_too_large: 413,
  rate_limited: 429,
  no_capacity: 503,
  start_failed: 503,
  mint_unavailable: 503,
  /** The node's database (PostgreSQL) does not answer: nothing was done; try again (Retry-After). */
  store_unavailable: 503,
  /**
   * Replicas with crun: the replica holding the lease's sandbox is down, so an extension or a stop
   * through another one could not reach the sandbox. Nothing was charged or changed (Retry-After).
   */
  replica_unavailable: 503,
  payout_failed: 502,
  internal: 500,
  /** A lease's port URL while nothing in the sandbox answers on that port. */
  bad_gateway: 502,
  /** A lease's port URL whose server sent no answer in time (5 minutes for the head). */
  gateway_timeout: 504,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AlacarteError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra fields for the JSON body, e.g. a refund token on `start_failed`. */
  readonly details: Readonly<Record<string, unknown>>;
  /** Extra response headers, e.g. the NUT-24 `X-Cashu` challenge of a 402. */
  readonly headers: Readonly<Record<string, string | string[]>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: {
      cause?: unknown;
      details?: Record<string, unknown>;
      headers?: Record<string, string | string[]>;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'AlacarteError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = options.details ?? {};
    this.headers = options.headers ?? {};
  }
}

/** An expected failure, returned as a value rather than thrown. */
export type Failure<C extends string = ErrorCode> = { ok: false; code: C; message: string };
export type Result<T, C extends string = ErrorCode> = ({ ok: true } & T) | Failure<C>;
