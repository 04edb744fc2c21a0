import { Amount } from '../core/amount.js';
import { AlacarteError } from '../core/errors.js';
import type { BearerSecret, LeaseId, PaymentKey } from '../core/ids.js';
import type { PaymentRail } from '../rails/payment-rail.js';
import type { Database } from '../store/database.js';
import type { Answer } from './answer.js';
import type { LeaseRow, PaymentRow } from './lease-record.js';
import type { NodeSecret } from './node-secret.js';
import type { Refunds } from './refunds.js';

export interface ReplaysOptions {
  db: Database;
  rail: PaymentRail;
  secret: NodeSecret;
  /** A failed start's refund comes from the mints that were paid. */
  refunds: Refunds;
  /** Resolves once the sandbox has the deadline the store shows (or the lease has ended); else throws. */
  confirmDeadline: (leaseId: LeaseId) => Promise<void>;
  /** The public view of a lease (GET's body), shared with the service. */
  leaseBody: (row: LeaseRow) => Promise<Record<string, unknown>>;
  /** A lease answer's `ports` map (public URLs) for a row. */
  ports: (row: LeaseRow) => Record<string, string>;
  /** Fields every lease answer carries beside the stored ones (the SSH login, when served). */
  extraFields?: (leaseId: string) => Record<string, unknown>;
}

/**
 * Answers a paid request again, and only to the payment that paid it (API.md "Leases"). A lease's
 * credential, change and a failed start's refund are derived from the node secret and the payment,
 * so whoever can trigger a replay receives them: the rules here decide who may.
 *
 * - A payment is bound to the request it first came with (create: a digest of the body; extend:
 *   the lease and the seconds). The same payment with another request is `idempotency_conflict`,
 *   with nothing about the first request in the answer.
 * - An Idempotency-Key is bound to the payment (and so the body) it first came with. The same key
 *   with no payment, another payment or another body is `idempotency_conflict`. The key never
 *   unlocks anything on its own: the same payment and body replay with or without it.
 */
export class Replays {
  private readonly db: Database;
  private readonly rail: PaymentRail;
  private readonly secret: NodeSecret;
  private readonly refunds: Refunds;
  private readonly leaseBody: ReplaysOptions['leaseBody'];
  private readonly ports: ReplaysOptions['ports'];
  private readonly confirmDeadline: ReplaysOptions['confirmDeadline'];
  private readonly extraFields: NonNullable<ReplaysOptions['extraFields']>;

  constructor(options: ReplaysOptions) {
    this.db = options.db;
    this.rail = options.rail;
    this.secret = options.secret;
    this.refunds = options.refunds;
    this.leaseBody = options.leaseBody;
    this.ports = options.ports;
    this.confirmDeadline = options.confirmDeadline;
    this.extraFields = options.extraFields ?? (() => ({}));
  }

  /**
   * Digest of a create request's body (canonical JSON, keys sorted), keyed with the node secret:
   * the store can compare bodies without holding them, and a stolen database cannot be used to
   * guess low-entropy values in `env`. Hex, 64 characters.
   */
  requestHash(body: unknown): string {
    return this.secret.derive('request', canonicalJson(body)).toString('hex');
  }

  /** The payment an Idempotency-Key (its hash) is bound to, if any. */
  async boundTo(idemHash: string): Promise<PaymentRow | undefined> {
    return this.db
      .selectFrom('payments')
      .selectAll()
      .where('idempotency_hash', '=', idemHash)
      .executeTakeFirst();
  }

  /**
   * Refuses an Idempotency-Key that is bound to anything but this payment (`key`; undefined when
   * the request carries no usable payment). A key bound to this very payment passes: the payment
   * then replays under its own rules.
   */
  async checkKey(idemHash: string, key: PaymentKey | undefined): Promise<void> {
    const bound = await this.boundTo(idemHash);
    if (bound && bound.key !== key) throw conflict('this Idempotency-Key belongs to another payment');
  }

  /**
   * The first answer to the create that payment `key` paid, if it paid one; `idempotency_conflict`
   * when it paid for another request (an extension, or a create with another body).
   */
  async ofCreate(key: PaymentKey, requestHash: string): Promise<Answer | undefined> {
    const payment = await this.byKey(key);
    if (!payment) return undefined;
    if (payment.purpose !== 'create') throw conflict('this payment already paid for another request');
    // Rows written before request digests existed replay by payment alone.
    if (payment.request_hash !== null && payment.request_hash !== requestHash)
      throw conflict('this payment already paid for a request with another body');
    return this.createAnswer(payment);
  }

  /**
   * The answer to the extension of `leaseId` by `seconds` that payment `key` paid, if it paid one;
   * `idempotency_conflict` when it paid for anything else (another lease, other seconds, a create).
   */
  async ofExtension(leaseId: string, key: PaymentKey, seconds: number): Promise<Answer | undefined> {
    const payment = await this.byKey(key);
    if (!payment) return undefined;
    if (payment.purpose !== 'extend' || payment.lease_id !== leaseId || Number(payment.seconds) !== seconds)
      throw conflict('this payment already paid for another request');
    // Never 200 unless the sandbox has the deadline the answer shows (or the lease has ended).
    await this.confirmDeadline(leaseId as LeaseId);
    const row = await this.db
      .selectFrom('leases')
      .selectAll()
      .where('id', '=', leaseId)
      .executeTakeFirstOrThrow();
    const change = await this.change(payment, row.unit);
    return {
      status: 200,
      headers: change ? { 'x-cashu': change } : {},
      body: { ...(await this.leaseBody(row)), change },
    };
  }

  /** The first answer to a paid create, rebuilt from the store and the node secret. */
  private async createAnswer(payment: PaymentRow): Promise<Answer> {
    const row = await this.db
      .selectFrom('leases')
      .selectAll()
      .where('id', '=', payment.lease_id)
      .executeTakeFirstOrThrow();
    const unit = row.unit;
    if (row.state === 'pending')
      throw new AlacarteError('rate_limited', 'this payment is still being processed; retry');
    if (row.state === 'failed') {
      // A start that failed (or never finished before a crash) gives everything back, change
      // included, from the mints that were paid.
      const refund = await this.refunds.showFailedStart(payment, row);
      throw new AlacarteError('start_failed', 'the sandbox could not start; your payment is refunded', {
        details: { ...refund },
      });
    }
    const change = await this.change(payment, unit);
    const firstDeadline = Number(row.started_at) + Number(payment.seconds) * 1000;
    const body = {
      id: row.id,
      token: this.secret.credentialFor(row.id as LeaseId) satisfies BearerSecret,
      state: 'running',
      offer: row.offer_id,
      image: row.image,
      created_at: iso(row.created_at),
      expires_at: iso(firstDeadline),
      paid: Number(payment.amount),
      unit,
      change,
      ports: this.ports(row),
      ...this.extraFields(row.id),
    };
    return { status: 200, headers: change ? { 'x-cashu': change } : {}, body };
  }

  /** The change of a payment as its token (null: none), the same on every call. */
  private async change(payment: PaymentRow, unit: string): Promise<string | null> {
    const [given] = await this.rail.giveBack({
      kind: 'parts',
      parts: [
        {
          purpose: 'change',
          subject: payment.key,
          amount: Amount.of(BigInt(payment.change), unit),
          source: payment.mint_url,
        },
      ],
    });
    return given?.token ?? null;
  }

  private async byKey(key: PaymentKey): Promise<PaymentRow | undefined> {
    return this.db.selectFrom('payments').selectAll().where('key', '=', key).executeTakeFirst();
  }
}

/**
 * Thrown from a rail's `admit` when the payment paid before: the rail stops with nothing taken,
 * and the request gets `answer`, its first answer again.
 */
export class Replayed extends Error {
  constructor(readonly answer: Answer) {
    super('a payment answered again');
  }
}

/** The answer to a request that reuses a payment or an Idempotency-Key for something else. */
export function conflict(message: string): AlacarteError {
  return new AlacarteError(
    'idempotency_conflict',
    `${message}; nothing was charged (send a new payment, and a new Idempotency-Key if you use one)`,
  );
}

/** JSON with object keys sorted at every depth, so equal bodies give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function iso(ms: number | bigint): string {
  return new Date(Number(ms)).toISOString();
}
