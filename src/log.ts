import { createHash } from 'node:crypto';
import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

/**
 * Paths pino blanks out wherever they appear in a log object. Ecash tokens, change, refunds,
 * credentials and key material are bearer money or secrets: they must never reach a log.
 */
export const REDACTED_PATHS = [
  'token',
  '*.token',
  'change',
  '*.change',
  'refund',
  '*.refund',
  // One refund token per mint.
  'refunds',
  '*.refunds',
  'seed',
  '*.seed',
  'preimage',
  '*.preimage',
  'secret',
  '*.secret',
  'proofs',
  '*.proofs',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers["x-cashu"]',
  '*.headers.authorization',
  '*.headers["x-cashu"]',
  // x402 payments: a signed authorization also unlocks the replay of what it bought.
  'headers["payment-signature"]',
  'headers["x-payment"]',
  '*.headers["payment-signature"]',
  '*.headers["x-payment"]',
  'operatorToken',
  '*.operatorToken',
  // NUT-04/05 quote ids: whoever holds one may mint a paid quote's ecash or read a melt's
  // preimage. Logged as quoteRef (logRef) instead, for the operator to match lines.
  'quote',
  '*.quote',
];

/**
 * A short digest of a secret identifier (a quote id), for log lines that must be matched with one
 * another without the identifier itself: 12 hex characters of its SHA-256.
 */
export function logRef(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 12);
}

export function createLogger(
  options: { level?: LoggerOptions['level']; destination?: NodeJS.WritableStream } = {},
): Logger {
  const opts: LoggerOptions = {
    level: options.level ?? 'info',
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    base: undefined,
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

/** The default for libraries and tests: logs nothing. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
