import { ConfigError } from '../../config.js';
import {
  AlacarteApiError,
  AlacarteNetworkError,
  PriceLimitError,
  UnknownLeaseError,
} from '../../sdk/errors.js';
import { InsufficientFundsError, WalletOperationError } from '../../wallet/errors.js';
import { WalletBusyError } from '../../wallet/file-lock.js';
import { WalletFileError } from '../../wallet/wallet-store.js';

/** A mistake in the command line itself: exit code 2 and a pointer to the command's help. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

export const processIo = (): Io => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });

/** Progress on stderr, only when a person watches it (stderr is a terminal) and not in --json mode. */
export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private frame = 0;
  private text = '';
  private readonly enabled: boolean;

  constructor(
    private readonly stderr: NodeJS.WriteStream,
    quiet: boolean,
  ) {
    this.enabled = !quiet && stderr.isTTY === true;
  }

  start(text: string): void {
    this.text = text;
    if (!this.enabled) return;
    if (!this.timer) {
      this.timer = setInterval(() => this.draw(), 100);
      this.timer.unref();
    }
    this.draw();
  }

  stop(): void {
    if (!this.enabled) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stderr.write('\r\x1b[2K');
  }

  private draw(): void {
    const frames = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
    this.frame = (this.frame + 1) % frames.length;
    this.stderr.write(`\r\x1b[2K${frames[this.frame]} ${this.text}`);
  }
}

/**
 * node:util parseArgs's refusal in one line: its first sentence (what follows is advice about
 * positionals that reads wrongly here), and for a value that starts with `-` (`--for -1h`) how
 * to give one.
 */
function parseArgsMessage(err: TypeError & { code?: unknown }): string {
  const first = (err.message.split('\n')[0] ?? '').split('. ')[0]?.replace(/\.$/, '') ?? '';
  const said = first.charAt(0).toLowerCase() + first.slice(1);
  // Node names an option with a short alias as '-f, --for'.
  const option = /'(?:-\w, )?(--?[\w-]+)'/.exec(first)?.[1];
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && /ambiguous/.test(first) && option)
    return `${said}: give its value, as ${option}=VALUE when it starts with '-'`;
  return said;
}

/** One clear line (and a hint) for every error a renter can meet; the exit code goes with it. */
export function describeError(err: unknown, command: string): { line: string; hint?: string; code: number } {
  if (err instanceof UsageError) {
    return {
      line: `alacarte ${err.command}: ${err.message}`,
      hint: `see: alacarte ${err.command} --help`,
      code: 2,
    };
  }
  if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
    return {
      line: `alacarte ${command}: ${parseArgsMessage(err)}`,
      hint: `see: alacarte ${command} --help`,
      code: 2,
    };
  }
  if (err instanceof InsufficientFundsError) {
    const unit = err.needed.unit;
    const topup = Math.max(100, Math.ceil(Number(err.missing.value) / 100) * 100);
    const elsewhere = err.elsewhere && Number(err.elsewhere.value) > 0 ? err.elsewhere : undefined;
    const accepted = err.accepted?.length
      ? ` of the mint${err.accepted.length > 1 ? 's' : ''} the node takes (${err.accepted.join(', ')})`
      : '';
    return {
      line:
        `alacarte ${command}: not enough ecash${elsewhere ? accepted : ''}: need ${err.needed.value} ${unit}, have ${err.available.value} ${unit}` +
        (elsewhere
          ? `; ${elsewhere.value} ${unit} more is at other mints, which this node does not take`
          : ''),
      hint: `run: alacarte wallet topup ${topup}${elsewhere ? ' (with this node as --url: ecash of its own mint)' : ''}`,
      code: 1,
    };
  }
  if (err instanceof PriceLimitError) {
    return {
      line: `alacarte ${command}: ${err.message}; nothing was paid`,
      hint: `check the price: alacarte quote — or raise --max`,
      code: 1,
    };
  }
  if (err instanceof AlacarteApiError) {
    return {
      line: `alacarte ${command}: ${err.message} (${err.code})`,
      hint: apiHint(err, command),
      code: 1,
    };
  }
  if (err instanceof AlacarteNetworkError) {
    return {
      line: `alacarte ${command}: ${err.message}`,
      hint: 'is the node running? start one with: alacarte serve — or point to one with --url or ALACARTE_URL',
      code: 1,
    };
  }
  if (err instanceof UnknownLeaseError) {
    return { line: `alacarte ${command}: ${err.message}`, hint: 'see your leases: alacarte leases', code: 1 };
  }
  if (err instanceof WalletBusyError) {
    return {
      line: `alacarte ${command}: ${err.message}`,
      hint: 'wait for it to finish, then run the command again',
      code: 1,
    };
  }
  if (err instanceof WalletOperationError || err instanceof WalletFileError || err instanceof ConfigError) {
    return { line: `alacarte ${command}: ${err.message}`, code: 1 };
  }
  // Node's fetch says only "fetch failed" when nothing answers (the wallet's mint, reached by
  // cashu-ts, which wraps it in its NetworkError): where it tried and why are in the causes.
  if (err instanceof Error && err.message === 'fetch failed') {
    const cause = socketCause(err);
    const where =
      typeof cause.address === 'string'
        ? `${cause.address}${typeof cause.port === 'number' ? `:${cause.port}` : ''}`
        : 'the mint';
    const why = typeof cause.code === 'string' ? ` (${cause.code})` : '';
    return {
      line: `alacarte ${command}: nothing answers at ${where}${why}`,
      hint: "is the node whose mint holds this wallet's ecash running? (--url or ALACARTE_URL names the node)",
      code: 1,
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { line: `alacarte ${command}: ${message}`, code: 1 };
}

function apiHint(err: AlacarteApiError, command: string): string | undefined {
  switch (err.code) {
    case 'no_capacity':
      return `the node is full${err.retryAfter ? `; try again in ${err.retryAfter}s` : ''} or pick another offer: alacarte offers`;
    case 'unauthorized':
      return 'this machine holds no valid credential for that lease: alacarte leases';
    case 'lease_not_running':
      return 'the lease has ended; rent a new one: alacarte rent --offer small --for 1h';
    case 'lease_elsewhere':
      return 'the node runs several servers and this lease is on another one; try again (extend and stop work anywhere)';
    case 'replica_unavailable':
      return `the node's server running this lease is down; nothing was charged: try again${err.retryAfter ? ` in ${err.retryAfter}s` : ' shortly'}`;
    case 'invalid_request':
      // Only an offer, image or duration is what `alacarte offers` answers; a bad path of cp is not.
      return ['rent', 'quote', 'extend'].includes(command)
        ? 'see the offers and images: alacarte offers'
        : undefined;
    case 'mint_not_accepted':
    case 'unit_mismatch':
      return "the wallet's ecash is not from a mint this node accepts: alacarte wallet balance";
    case 'start_failed':
      return 'your payment was refunded into the wallet';
    case 'idempotency_conflict':
      return 'that payment already bought something else; nothing more was taken: try again';
    case 'payload_too_large':
      // exec's stdin travels in the request body (as base64 when it is not text): 1 MiB of body,
      // the default, carries about 768 KiB of it.
      return command === 'exec'
        ? "stdin is over what the node's request body limit carries; send it as a file: alacarte cp FILE ID:/root/"
        : undefined;
    default:
      return undefined;
  }
}

export function formatWhen(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Left-aligned columns, for tables a person reads. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The innermost cause of `err` that names a socket (`address`, `port`, `code`), or {}. */
function socketCause(err: Error): { code?: unknown; address?: unknown; port?: unknown } {
  let at: unknown = err.cause;
  for (let depth = 0; at && typeof at === 'object' && depth < 5; depth++) {
    const c = at as { code?: unknown; address?: unknown; port?: unknown; cause?: unknown };
    if (typeof c.address === 'string' || typeof c.code === 'string') return c;
    at = c.cause;
  }
  return {};
}
