/**
 * Errors of the Cashu mint in the NUT-00 format `{"detail": "...", "code": N}`, with the codes of
 * the NUT error table (error_codes.md). 10000 is ours: a request the schema or a bound rejects.
 */
export const MintErrorCode = {
  invalidRequest: 10000,
  proofVerificationFailed: 10001,
  proofsSpent: 11001,
  proofsPending: 11002,
  outputsAlreadySigned: 11003,
  outputsPending: 11004,
  unbalanced: 11005,
  amountOutOfRange: 11006,
  duplicateInputs: 11007,
  duplicateOutputs: 11008,
  multipleUnits: 11009,
  unitMismatch: 11010,
  amountlessInvoice: 11011,
  invoiceAmountMismatch: 11012,
  unitUnsupported: 11013,
  maxInputsExceeded: 11014,
  maxOutputsExceeded: 11015,
  keysetUnknown: 12001,
  keysetInactive: 12002,
  quoteNotPaid: 20001,
  quoteIssued: 20002,
  mintingDisabled: 20003,
  lightningPaymentFailed: 20004,
  quotePending: 20005,
  invoiceAlreadyPaid: 20006,
  quoteExpired: 20007,
  /** NUT-20: a locked quote's mint request lacks a valid signature */
  signatureInvalid: 20008,
  /** NUT-20: the quote request's pubkey is missing or invalid */
  pubkeyRequired: 20009,
} as const;

export type MintErrorCode = (typeof MintErrorCode)[keyof typeof MintErrorCode];

/** The wire shape of every mint error answer. */
export interface MintErrorBody {
  detail: string;
  code: number;
}

/**
 * An expected refusal of a mint request: a 4xx (400 unless stated), or 503 when the mint is too
 * busy to take the request now (sent with `Retry-After`; nothing was taken).
 */
export class MintError extends Error {
  readonly code: MintErrorCode;
  readonly status: number;

  constructor(code: MintErrorCode, detail: string, options: { status?: number; cause?: unknown } = {}) {
    super(detail, { cause: options.cause });
    this.name = 'MintError';
    this.code = code;
    this.status = options.status ?? 400;
  }

  toBody(): MintErrorBody {
    return { detail: this.message, code: this.code };
  }
}

export function invalidRequest(detail: string, status = 400): MintError {
  return new MintError(MintErrorCode.invalidRequest, detail, { status });
}
