import { randomUUID } from 'node:crypto';
import { Amount } from '../core/amount.js';
import { LocalWallet } from '../wallet/local-wallet.js';
import type { PaymentPurpose, PendingOp } from '../wallet/wallet-state.js';
import { attachTerminal, type LeaseTerminal } from './attach.js';
import { AlacarteApiError, AlacarteNetworkError, PriceLimitError, UnknownLeaseError } from './errors.js';
import { LeaseFilesClient } from './files.js';
import { bookEntryOf, LeaseBook, type LeaseBookEntry } from './lease-book.js';
import type {
  BackgroundExec,
  ExecBytesResult,
  ExecEncoding,
  ExecResult,
  Lease,
  OffersResponse,
  Quote,
  RentedLease,
  RentRequest,
  StoppedLease,
} from './types.js';

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface AlacarteOptions {
  /** Base URL of the node, e.g. http://127.0.0.1:8402. */
  url: string;
  /**
   * Send every call for a lease to `url`, even for a lease the book knows at another address (a
   * user who named the node, e.g. one replica of several). Default: a known lease's calls go to
   * the node that sold it.
   */
  pinUrl?: boolean;
  /** Pays 402 challenges, takes change and refunds back; needed for rent, extend and stop. */
  wallet?: LocalWallet;
  /** Where lease credentials are kept (`leases.json`); default: the wallet's home, if any. */
  leases?: LeaseBook;
  fetch?: FetchLike;
  /** Attempts for a paid request whose answer was lost (same token, same Idempotency-Key). */
  retries?: number;
  /** Between retries, in milliseconds. */
  retryDelayMs?: number;
  /** Reported as a paid request goes: 'quote' → 'pay' → 'send' → 'change'. */
  onProgress?: (step: string) => void;
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/**
 * The alacarte client: it pays 402 challenges from its wallet, keeps lease credentials, and maps
 * every error answer to an AlacarteApiError with the API's stable code.
 *
 * ```ts
 * const alacarte = Alacarte.open({ url: 'http://127.0.0.1:8402' });
 * const lease = await alacarte.rent({ offer: 'small', seconds: 600, image: 'busybox' });
 * console.log((await alacarte.exec(lease.id, ['echo', 'hi'])).stdout);
 * ```
 */
export class Alacarte {
  readonly url: string;
  private readonly wallet: LocalWallet | undefined;
  private readonly book: LeaseBook | undefined;
  private readonly fetchImpl: FetchLike;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly progress: (step: string) => void;
  private readonly pinUrl: boolean;
  /** Files in a lease's sandbox: `files.write(id, path, data, {mode})`, `files.read(id, path)`. */
  readonly files: LeaseFilesClient;

  constructor(options: AlacarteOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.pinUrl = options.pinUrl === true;
    this.wallet = options.wallet;
    this.book = options.leases ?? (options.wallet ? new LeaseBook(homeOf(options.wallet)) : undefined);
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.retries = options.retries ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 500;
    this.progress = options.onProgress ?? (() => undefined);
    this.files = new LeaseFilesClient((id, token) => this.credential(id, token), this.fetchImpl);
  }

  /** A client paying from the wallet in `home` (default $ALACARTE_HOME), created on first use. */
  static open(options: { url: string; home?: string } & Omit<AlacarteOptions, 'url' | 'wallet'>): Alacarte {
    return new Alacarte({ ...options, wallet: LocalWallet.open({ home: options.home }) });
  }

  /** Releases the wallet's lock; the client pays no more afterwards. */
  close(): void {
    this.wallet?.close();
  }

  async offers(): Promise<OffersResponse> {
    return (await this.call('GET', '/v1/offers')).body as unknown as OffersResponse;
  }

  async quote(offer: string, seconds: number): Promise<Quote> {
    const q = new URLSearchParams({ offer, seconds: String(seconds) });
    return (await this.call('GET', `/v1/quote?${q}`)).body as unknown as Quote;
  }

  /**
   * Rents a sandbox, paying from the wallet: exactly the price when the wallet can split its
   * ecash to it, else a little more, with the change taken back. The credential is kept in
   * `leases.json` before anything else happens with the answer.
   */
  async rent(request: RentRequest): Promise<RentedLease> {
    const body: Record<string, unknown> = {
      offer: request.offer,
      seconds: request.seconds,
      image: request.image,
    };
    if (request.command) body.command = request.command;
    if (request.env) body.env = request.env;
    if (request.ports?.length) body.ports = request.ports;
    if (request.sshKeys?.length) body.ssh_keys = request.sshKeys;
    const url = `${this.url}/v1/leases`;
    const answer = await this.paid(
      url,
      body,
      (idempotencyKey) => ({ kind: 'lease.create', url, idempotencyKey, body }),
      request.maxAmount,
    );
    return answer as unknown as RentedLease;
  }

  /** Buys more time; anyone who knows the id may, no credential needed. */
  async extend(id: string, seconds: number, options: { maxAmount?: number } = {}): Promise<Lease> {
    const url = `${this.url}/v1/leases/${encodeURIComponent(id)}/extend`;
    const answer = await this.paid(
      url,
      { seconds },
      (idempotencyKey) => ({ kind: 'lease.extend', url, idempotencyKey, leaseId: id, seconds }),
      options.maxAmount,
    );
    return answer as unknown as Lease;
  }

  /**
   * The lease as the node sees it. A lease of the book that the node stopped before its time (its
   * sandbox died) has its refund collected here, into the wallet: the answer is then the stopped
   * lease with `refunded` (see collectRefunds).
   */
  async status(id: string, options: { token?: string } = {}): Promise<Lease | StoppedLease> {
    const { url, token } = this.credential(id, options.token);
    const lease = (
      await this.call('GET', `/v1/leases/${encodeURIComponent(id)}`, undefined, { token, base: url })
    ).body as unknown as Lease;
    const entry = this.book?.get(id);
    if (entry?.state === 'running' && lease.state === 'stopped' && this.wallet) {
      // Stopped by the node, not from here: DELETE hands over its refund (the same answer every
      // time). Until that worked the book keeps it as running, so the next call tries again.
      return (await this.stop(id).catch(() => undefined)) ?? lease;
    }
    if (entry) this.book?.update(id, { state: lease.state, expires_at: lease.expires_at });
    return lease;
  }

  /**
   * Runs a command in the lease's sandbox. With `encoding: 'base64'`, `stdin` is sent as base64
   * (given as bytes, or as a string that is base64 already) and stdout/stderr come back as base64;
   * see execBytes for bytes both ways. Errors: AlacarteApiError (`invalid_request`,
   * `unauthorized`, `lease_not_running`, ...).
   */
  async exec(
    id: string,
    command: string[],
    options: {
      stdin?: string | Uint8Array;
      encoding?: ExecEncoding;
      timeoutSeconds?: number;
      token?: string;
    } = {},
  ): Promise<ExecResult> {
    const { url, token } = this.credential(id, options.token);
    const body: Record<string, unknown> = { command };
    // Bytes can only travel as base64; a string is sent as given, in the encoding asked for.
    const encoding = options.stdin instanceof Uint8Array ? 'base64' : options.encoding;
    if (options.stdin !== undefined) {
      body.stdin =
        options.stdin instanceof Uint8Array ? Buffer.from(options.stdin).toString('base64') : options.stdin;
    }
    if (encoding !== undefined) body.encoding = encoding;
    if (options.timeoutSeconds !== undefined) body.timeout_seconds = options.timeoutSeconds;
    const answer = await this.call('POST', `/v1/leases/${encodeURIComponent(id)}/exec`, body, {
      token,
      base: url,
    });
    return answer.body as unknown as ExecResult;
  }

  /**
   * exec with bytes both ways: stdin as given, stdout and stderr exactly as the command wrote them
   * (up to the node's cap, `truncated` then set). Travels as base64.
   */
  async execBytes(
    id: string,
    command: string[],
    options: { stdin?: Uint8Array | string; timeoutSeconds?: number; token?: string } = {},
  ): Promise<ExecBytesResult> {
    const stdin = typeof options.stdin === 'string' ? Buffer.from(options.stdin, 'utf8') : options.stdin;
    const r = await this.exec(id, command, { ...options, stdin, encoding: 'base64' });
    return {
      exit_code: r.exit_code,
      stdout: Buffer.from(r.stdout, 'base64'),
      stderr: Buffer.from(r.stderr, 'base64'),
      truncated: r.truncated,
    };
  }

  /**
   * Starts a command detached in the sandbox and returns at once: it runs until it exits or the
   * lease ends, its output discarded (redirect it to a file inside: `sh -c 'cmd > /tmp/log 2>&1'`).
   */
  async execBackground(
    id: string,
    command: string[],
    options: { token?: string } = {},
  ): Promise<BackgroundExec> {
    const { url, token } = this.credential(id, options.token);
    const answer = await this.call(
      'POST',
      `/v1/leases/${encodeURIComponent(id)}/exec`,
      { command, background: true },
      { token, base: url },
    );
    return answer.body as unknown as BackgroundExec;
  }

  /**
   * An interactive TTY in the sandbox, as a duplex byte stream (see LeaseTerminal). Input that no
   * person types (a script, a program) may be dropped by a shell that has not set up its line
   * editing yet: send it after `untilShellReads(terminal)` (shell-ready.ts).
   */
  async attach(
    id: string,
    options: { cols?: number; rows?: number; token?: string } = {},
  ): Promise<LeaseTerminal> {
    const { url, token } = this.credential(id, options.token);
    const wsUrl = `${url.replace(/^http/, 'ws')}/v1/leases/${encodeURIComponent(id)}/attach`;
    return attachTerminal(wsUrl, token, { cols: options.cols, rows: options.rows });
  }

  /** Stops a lease early; the refund for the unused time goes back into the wallet. */
  async stop(id: string, options: { token?: string } = {}): Promise<StoppedLease> {
    const { url, token } = this.credential(id, options.token);
    const wallet = this.wallet;
    const opId = wallet?.beginRefund(url, id, `${url}/mint`);
    let answer: Answer;
    try {
      answer = await this.withRetries(() =>
        this.call('DELETE', `/v1/leases/${encodeURIComponent(id)}`, undefined, { token, base: url }),
      );
    } catch (err) {
      if (err instanceof AlacarteApiError && opId) await wallet?.refundReceived(opId, null);
      throw err;
    }
    const stopped = answer.body as unknown as StoppedLease;
    if (wallet && opId) await wallet.refundReceived(opId, refundTokens(stopped));
    this.book?.update(id, { state: stopped.state, expires_at: stopped.expires_at });
    return stopped;
  }

  /**
   * Collects the refunds of leases the node ended before their time. A lease whose sandbox died
   * (out of memory, say) is stopped by the node with its unused time refunded; the refund is
   * handed over by DELETE, which answers a stopped lease the same way every time. Every lease the
   * book holds as running is asked about (status, which collects the refund of a stopped one into
   * the wallet). Leases whose node does not answer are left for next time.
   * Resolves with the leases collected: what each refunded and what of it came into this wallet
   * (`received`: less when another holder of the credential stopped the lease and redeemed the
   * refund first; `pending` when its redeeming waits for the mint, done by a later recover()),
   * in the lease's unit.
   */
  async collectRefunds(): Promise<CollectedRefund[]> {
    const wallet = this.wallet;
    if (!wallet || !this.book) return [];
    const collected: CollectedRefund[] = [];
    for (const entry of this.book.list()) {
      if (entry.state !== 'running') continue;
      let lease: Lease | StoppedLease;
      const before = wallet.balance();
      const receivesBefore = receiveOps(wallet);
      try {
        lease = await this.status(entry.id);
      } catch {
        continue; // node unreachable or the lease forgotten: asked again next time
      }
      // status() collected it when the book now holds it as stopped and the answer names a refund.
      if (typeof lease.refunded === 'number' && this.book.get(entry.id)?.state === 'stopped')
        collected.push({
          id: entry.id,
          refunded: lease.refunded,
          received: Math.max(0, Number(wallet.balance().sub(before).value)),
          pending: receiveOps(wallet) > receivesBefore,
          unit: lease.unit,
        });
    }
    return collected;
  }

  /** The leases rented from this machine (with their credentials). */
  leases(): LeaseBookEntry[] {
    return this.book?.list() ?? [];
  }

  /**
   * Settles what an earlier crash or lost connection left pending: the wallet asks the mint, and
   * payments the server took are replayed (same token, same key) to get the lease, its
   * credential and change; stops are repeated to fetch the refund. Safe to call any time.
   */
  async recover(): Promise<{ settled: number; pending: number }> {
    const wallet = this.wallet;
    if (!wallet || wallet.pendingOps().length === 0) return { settled: 0, pending: 0 };
    const results = await wallet.reconcile();
    let settled = results.filter((r) => r.outcome === 'settled').length;
    let pending = results.filter((r) => r.outcome === 'pending').length;
    for (const { op, outcome } of results) {
      if (outcome !== 'needs-server') continue;
      try {
        if (await this.replay(op)) settled++;
        else pending++;
      } catch {
        pending++;
      }
    }
    return { settled, pending };
  }

  // ---- internals ----

  private async replay(op: PendingOp): Promise<boolean> {
    const wallet = this.wallet;
    if (!wallet) return false;
    if (op.kind === 'refund') {
      const entry = op.leaseId ? this.book?.get(op.leaseId) : undefined;
      if (!entry || !op.leaseId) {
        await wallet.refundReceived(op.id, null);
        return true;
      }
      try {
        const res = await this.call('DELETE', `/v1/leases/${encodeURIComponent(op.leaseId)}`, undefined, {
          token: entry.token,
          base: entry.url,
        });
        await wallet.refundReceived(op.id, refundTokens(res.body));
        this.book?.update(op.leaseId, { state: 'stopped' });
      } catch (err) {
        if (!(err instanceof AlacarteApiError)) throw err;
        await wallet.refundReceived(op.id, null);
      }
      return true;
    }
    const purpose = op.purpose;
    if (op.kind !== 'payment' || !purpose || !op.token) return false;
    const body = purpose.kind === 'lease.create' ? purpose.body : { seconds: purpose.seconds };
    const answer = await this.rawSend(purpose.url, body, op.token, purpose.idempotencyKey).catch(
      (err: unknown) => {
        if (err instanceof AlacarteNetworkError) return undefined;
        throw err;
      },
    );
    if (!answer) return false;
    try {
      await this.settlePayment(op.id, purpose, answer);
    } catch (err) {
      if (!(err instanceof AlacarteApiError)) throw err;
      // Refused again although the mint saw the proofs spent: the server kept them, nothing to replay.
      if (answer.status < 500 && wallet.pendingOps().some((o) => o.id === op.id))
        await wallet.abandonPayment(op.id);
    }
    return true;
  }

  /** POST with a 402 answered from the wallet; retried on lost answers with the same token and key. */
  private async paid(
    url: string,
    body: Record<string, unknown>,
    purposeOf: (idempotencyKey: string) => PaymentPurpose,
    maxAmount?: number,
  ): Promise<Record<string, unknown>> {
    const wallet = this.wallet;
    this.progress('quote');
    const first = await this.withRetries(() => this.fetchJson(url, 'POST', body, {}));
    if (first.status !== 402) {
      if (first.status >= 400) throw apiError(first);
      return first.body;
    }
    if (!wallet)
      throw new AlacarteApiError(
        'payment_required',
        402,
        'payment required and no wallet to pay from',
        first.body,
      );
    const challenge = first.body as { amount?: unknown; unit?: unknown; mints?: unknown };
    const amount = Amount.parse(
      challenge.amount,
      typeof challenge.unit === 'string' ? challenge.unit : 'sat',
    );
    const mints = Array.isArray(challenge.mints) ? challenge.mints.filter((m) => typeof m === 'string') : [];
    if (!amount || !mints.length)
      throw new AlacarteApiError('payment_required', 402, 'unreadable payment challenge', first.body);
    if (amount.unit !== wallet.unit) {
      throw new AlacarteApiError(
        'unit_mismatch',
        402,
        `the server asks for ${amount.unit}, the wallet holds ${wallet.unit}`,
      );
    }
    if (maxAmount !== undefined && amount.value > BigInt(maxAmount)) {
      throw new PriceLimitError(amount.toNumber(), maxAmount, amount.unit);
    }
    const idempotencyKey = randomUUID();
    const purpose = purposeOf(idempotencyKey);
    this.progress('pay');
    const payment = await wallet.pay({ mints, amount, purpose });
    this.progress('send');
    // A lost answer after every retry leaves the payment recorded: `recover` replays it later.
    const answer = await this.withRetries(() => this.rawSend(url, body, payment.token, idempotencyKey));
    this.progress('change');
    return this.settlePayment(payment.opId, purpose, answer);
  }

  private async settlePayment(
    opId: string,
    purpose: PaymentPurpose,
    answer: Answer,
  ): Promise<Record<string, unknown>> {
    const wallet = this.wallet;
    if (!wallet) throw new Error('no wallet');
    if (answer.status === 200 || answer.status === 201) {
      const lease = answer.body as unknown as RentedLease;
      if (purpose.kind === 'lease.create' && typeof lease.token === 'string') {
        this.book?.put(bookEntryOf(lease, purpose.url.replace(/\/v1\/leases$/, ''), lease.token));
      } else if (purpose.kind === 'lease.extend' && this.book?.get(purpose.leaseId)) {
        this.book.update(purpose.leaseId, { expires_at: lease.expires_at, state: lease.state });
      }
      const change = typeof lease.change === 'string' ? lease.change : answer.headers.get('x-cashu');
      await wallet.paymentAccepted(opId, change);
      return answer.body;
    }
    const err = apiError(answer);
    const returned = refundTokens(err.body);
    if (err.code === 'start_failed' || returned.length > 0) {
      // Money was taken and given back in the same answer (a failed start, or an extension of a
      // lease that ended meanwhile): one token per mint it was paid at.
      await wallet.paymentAccepted(opId, returned);
    } else if (answer.status < 500 || err.code === 'no_capacity') {
      await wallet.paymentRejected(opId);
    }
    throw err;
  }

  private rawSend(url: string, body: unknown, token: string, idempotencyKey: string): Promise<Answer> {
    return this.fetchJson(url, 'POST', body, { 'x-cashu': token, 'idempotency-key': idempotencyKey });
  }

  private credential(id: string, token: string | undefined): { url: string; token: string } {
    if (token) return { url: this.url, token };
    const entry = this.book?.get(id);
    if (!entry) throw new UnknownLeaseError(id);
    return { url: this.pinUrl ? this.url : entry.url, token: entry.token };
  }

  private async call(
    method: string,
    path: string,
    body?: unknown,
    options: { token?: string; base?: string } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const answer = await this.fetchJson(`${options.base ?? this.url}${path}`, method, body, headers);
    if (answer.status >= 400) throw apiError(answer);
    return answer;
  }

  private async fetchJson(
    url: string,
    method: string,
    body: unknown,
    headers: Record<string, string>,
  ): Promise<Answer> {
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        method,
        headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new AlacarteNetworkError(url, { cause: err });
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new AlacarteNetworkError(url, { cause: err });
    }
    let parsed: unknown = {};
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { error: res.ok ? 'invalid_response' : 'http_error', message: text.slice(0, 200) };
      }
    }
    const bodyObj = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    return { status: res.status, headers: res.headers, body: bodyObj };
  }

  /** Retries only when the answer was lost on the way (never after the server answered). */
  private async withRetries<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        if (!(err instanceof AlacarteNetworkError) || attempt >= this.retries) throw err;
        await new Promise((r) => setTimeout(r, this.retryDelayMs * (attempt + 1)));
      }
    }
  }
}

function apiError(answer: Answer): AlacarteApiError {
  const code = typeof answer.body.error === 'string' ? answer.body.error : `http_${answer.status}`;
  const message = typeof answer.body.message === 'string' ? answer.body.message : `HTTP ${answer.status}`;
  const retry = Number(answer.headers.get('retry-after'));
  return new AlacarteApiError(
    code,
    answer.status,
    message,
    answer.body,
    Number.isFinite(retry) && retry > 0 ? retry : undefined,
  );
}

function homeOf(wallet: LocalWallet): string {
  return wallet.path.replace(/\/wallet\.json$/, '');
}

/**
 * Every token an answer gives back: `refunds` (one per mint that was paid), else `refund` alone
 * (servers from before several mints).
 */
function refundTokens(body: unknown): string[] {
  const b = (body ?? {}) as { refund?: unknown; refunds?: unknown };
  if (Array.isArray(b.refunds)) {
    return b.refunds
      .map((r) => (r as { token?: unknown } | null)?.token)
      .filter((t): t is string => typeof t === 'string' && t.length > 0);
  }
  return typeof b.refund === 'string' && b.refund.length > 0 ? [b.refund] : [];
}

/** A refund collectRefunds() collected: amounts in the lease's `unit`. */
export interface CollectedRefund {
  id: string;
  /** What the node refunded. */
  refunded: number;
  /** What of it came into this wallet (less: redeemed elsewhere first). */
  received: number;
  /** Its redeeming waits for the mint (a later recover() does it). */
  pending: boolean;
  unit: string;
}

/** How many token receives the wallet has pending (left for a later recover()). */
function receiveOps(wallet: LocalWallet): number {
  return wallet.pendingOps().filter((op) => op.kind === 'receive').length;
}
