import { createHash } from 'node:crypto';
import { Amount } from '../../core/amount.js';
import { AlacarteError } from '../../core/errors.js';
import type { PaymentKey } from '../../core/ids.js';
import type { NodeSecret } from '../../leases/node-secret.js';
import type { LightningBackend } from '../../lightning/lightning-backend.js';
import type { Logger } from '../../log.js';
import { isUniqueViolation } from '../../mint/store/mint-store.js';
import type { Database } from '../../store/database.js';
import type {
  Challenge,
  GivenBack,
  InspectedPayment,
  Owed,
  OwedPart,
  PaymentHeaders,
  PaymentRail,
  PaymentRequest,
  PaymentSubject,
  RecordPayment,
  Redeemed,
  Rejection,
} from '../payment-rail.js';
import { changeOf, NO_PAYMENT, redeemedOf } from '../payment-rail.js';
import type { InvoiceLimits } from './invoice-limits.js';
import { MAX_MACAROON_CHARS, mintMacaroon, paymentHashOf, verifyMacaroon } from './macaroons.js';

/** Aperture's service name and tier for this node's caveats (`services=alacarte:0`). */
const SERVICE = 'alacarte';
/** Caveat keys, Aperture style (`<service>_<condition>`). */
const REQUEST = `${SERVICE}_request`;
const VALID_UNTIL = `${SERVICE}_valid_until`;

/**
 * How Lightning-paid leases are paid back (change, refunds, a returned payment): Cashu tokens of
 * the node's own mint. The Cashu rail does that; this is the part of it the L402 rail uses.
 */
export type OwnMintPayouts = Pick<PaymentRail, 'giveBack'>;

export interface L402RailOptions {
  db: Database;
  secret: NodeSecret;
  /** The node's own mint's Lightning backend: it issues the invoices and says whether they settled. */
  lightning: LightningBackend;
  /** Payouts in ecash of the node's own mint. */
  payouts: OwnMintPayouts;
  /** The own mint's URL: the payment source of L402 payments, so their payouts are its ecash. */
  mintUrl: () => string;
  /** The unit invoices are priced in; only `sat` can be paid over Lightning. */
  unit: string;
  /**
   * Bounds on the invoices unpaid 402s make (per client address, and outstanding overall); none:
   * unbounded (tests of other things).
   */
  limits?: InvoiceLimits;
  /** How long a macaroon may be presented after its invoice expires (a payment made just in time). */
  graceSeconds?: number;
  clock?: () => Date;
  logger?: Logger;
}

/** What `read` learnt of a payment, kept for `take` and giveBack. */
interface L402Payment {
  paymentHash: string;
  validUntil: number;
}

/**
 * L402 (Lightning HTTP 402, the protocol of Aperture): a 402 carries `WWW-Authenticate: L402
 * macaroon="…", invoice="…"` (and `LSAT` for older clients). The invoice is the own mint's
 * Lightning backend's, for exactly the price; the macaroon binds the payment hash (identifier) and
 * the request (caveats). `Authorization: L402 <macaroon>:<preimage>` pays: the macaroon verifies,
 * sha256(preimage) is its payment hash, the backend says the invoice settled, and the claim is
 * recorded in `l402_payments` in the transaction that records what it bought — one paid invoice,
 * one lease or extension.
 */
export class L402Rail implements PaymentRail {
  readonly id = 'l402';
  private readonly db: Database;
  private readonly secret: NodeSecret;
  private readonly lightning: LightningBackend;
  private readonly payouts: OwnMintPayouts;
  private readonly mintUrl: () => string;
  private readonly unit: string;
  private readonly graceSeconds: number;
  private readonly now: () => Date;
  private readonly readPayments = new WeakMap<InspectedPayment, L402Payment>();
  private readonly limits: InvoiceLimits | undefined;

  constructor(options: L402RailOptions) {
    this.db = options.db;
    this.secret = options.secret;
    this.lightning = options.lightning;
    this.payouts = options.payouts;
    this.mintUrl = options.mintUrl;
    this.unit = options.unit;
    this.graceSeconds = options.graceSeconds ?? 3600;
    this.now = options.clock ?? (() => new Date());
    this.limits = options.limits;
    // A paid invoice no longer counts against the cap on unpaid ones.
    if (this.limits) {
      const limits = this.limits;
      this.lightning.onSettlement((hash) => limits.paid(hash));
    }
  }

  /** Whether prices in `unit` can be asked for over Lightning (sat only). */
  accepts(unit: string): boolean {
    return unit === 'sat' && this.unit === 'sat';
  }

  /**
   * The L402 challenge: a fresh invoice for the price and a macaroon bound to it and `subject`. Over
   * the invoice limits of `client` (or of every client) it makes no invoice: the 402 then carries
   * the other rails' challenges and `Retry-After`, the seconds until an invoice may be asked again.
   */
  async challenge(price: Amount, subject: PaymentSubject, client?: string): Promise<Challenge> {
    if (!this.accepts(price.unit)) return { instructions: '', headers: {}, body: {} };
    const allowance = this.limits?.take(client) ?? { ok: true };
    if (!allowance.ok) {
      const wait = allowance.retryAfterSeconds;
      return {
        instructions: `(no Lightning invoice now: too many asked for; retry in ${wait} s for one)`,
        headers: { 'retry-after': String(wait) },
        body: {},
      };
    }
    const invoice = await this.lightning.createInvoice(price, describe(subject));
    this.limits?.issued(invoice.paymentHash, invoice.expiresAt);
    const validUntil = Math.floor(invoice.expiresAt.getTime() / 1000) + this.graceSeconds;
    // Three caveats, the request and price sharing one: few and short (macaroons.ts on the
    // library's binary encoder, which this node does not use).
    const macaroon = mintMacaroon(this.secret, SERVICE, invoice.paymentHash, {
      services: `${SERVICE}:0`,
      [REQUEST]: requestCondition(subject, price),
      [VALID_UNTIL]: String(validUntil),
    });
    const params = `macaroon="${macaroon.base64}", invoice="${invoice.bolt11}"`;
    return {
      instructions: 'or pay the L402 invoice and send Authorization: L402 <macaroon>:<preimage>',
      headers: { 'www-authenticate': [`L402 ${params}`, `LSAT ${params}`] },
      body: { l402: { invoice: invoice.bolt11, macaroon: macaroon.base64 } },
    };
  }

  /**
   * PaymentRail.redeem: the credential in `Authorization: L402` read and checked (`read`: the
   * macaroon is this node's, the preimage its invoice's, the request the one it was issued for),
   * admitted by the caller, then claimed (`take`: the invoice settled, the claim recorded with what
   * it bought).
   */
  async redeem(request: PaymentRequest, price: Amount): Promise<Redeemed | Rejection> {
    const read = this.read(request.headers, request.subject);
    if (!read.ok) return read;
    await request.admit?.(read.payment);
    return this.take(read.payment, price, request.record);
  }

  /** The L402 credential of `headers`, checked without asking the backend; no money moves. */
  private read(
    headers: PaymentHeaders,
    subject: PaymentSubject,
  ): { ok: true; payment: InspectedPayment } | Rejection {
    const header = headers.authorization;
    if (typeof header !== 'string') return NO_PAYMENT;
    const match = /^(?:L402|LSAT)\s+(\S+)$/i.exec(header.trim());
    if (!match?.[1]) return NO_PAYMENT;
    const credential = match[1];
    const colon = credential.lastIndexOf(':');
    if (colon <= 0 || credential.length > MAX_MACAROON_CHARS + 65)
      return reject('l402_invalid', 'send Authorization: L402 <macaroon>:<preimage hex>');
    const macaroon = verifyMacaroon(this.secret, credential.slice(0, colon));
    if (!macaroon) return reject('l402_invalid', 'the L402 macaroon is not one this node issued');
    const c = macaroon.conditions;
    if (c.services !== `${SERVICE}:0`)
      return reject('l402_invalid', 'the L402 macaroon is for another service');
    if (paymentHashOf(credential.slice(colon + 1)) !== macaroon.paymentHash)
      return reject('l402_invalid', "the preimage is not the L402 invoice's");
    for (const key of Object.keys(c)) {
      if (key !== 'services' && key !== REQUEST && key !== VALID_UNTIL)
        return reject('l402_invalid', 'the L402 macaroon carries a caveat this node does not know');
    }
    const request = new URLSearchParams(c[REQUEST] ?? '');
    const amount = Amount.parse(request.get('amount'), this.unit);
    const validUntil = Number(c[VALID_UNTIL]);
    if (!amount || !Number.isSafeInteger(validUntil))
      return reject('l402_invalid', 'the L402 macaroon lacks its amount or expiry');
    request.delete('amount');
    if (request.toString() !== subjectCondition(subject))
      return reject('idempotency_conflict', 'this L402 credential was issued for another request');
    const payment: InspectedPayment = {
      rail: this.id,
      key: createHash('sha256').update(`l402/${macaroon.paymentHash}`).digest('hex') as PaymentKey,
      amount,
      fee: Amount.zero(this.unit),
      source: this.mintUrl(),
      prepaid: true,
    };
    this.readPayments.set(payment, { paymentHash: macaroon.paymentHash, validUntil });
    return { ok: true, payment };
  }

  /** Claims a read credential whose invoice settled, in one transaction with its change and record. */
  private async take(
    payment: InspectedPayment,
    price: Amount,
    record: RecordPayment,
  ): Promise<Redeemed | Rejection> {
    const l402 = this.of(payment);
    // Paid first: a paid credential refused here is handed back by the caller (prepaid), an
    // unpaid one asks for payment whatever else is wrong with it.
    const unpaid = await this.unpaid(l402);
    if (unpaid) return unpaid;
    if (this.now().getTime() / 1000 > l402.validUntil)
      return reject('payment_required', 'this L402 credential has expired');
    const redeemed = redeemedOf(payment, price);
    if (!redeemed) return reject('insufficient_amount', `the L402 invoice does not pay ${price}`);
    try {
      await this.db.transaction().execute(async (trx) => {
        await this.claim(trx, payment, l402, 'claimed');
        await this.payouts.giveBack({ kind: 'parts', parts: [changeOf(redeemed)] }, trx);
        await record(trx, redeemed);
      });
      this.limits?.paid(l402.paymentHash);
      return redeemed;
    } catch (err) {
      // Another replica claimed it first: its answer is the replay's. Handed back earlier (the
      // price had risen): refused, and the caller shows the same returned token again.
      const row = isUniqueViolation(err) ? await this.claimed(l402) : undefined;
      if (row?.outcome === 'returned')
        return reject('token_spent', "this L402 credential's payment was returned to its payer");
      if (row) return reject('token_spent', 'this L402 credential has already bought a lease or extension');
      throw err;
    }
  }

  /**
   * PaymentRail.giveBack. Parts owed (change, refunds) are ecash of the own mint (`payouts`). An
   * unused payment — a paid invoice whose extension found the lease ended, or that can no longer
   * buy what it was issued for (the price rose, the credential expired) — is handed back whole
   * as ecash of the own mint, booked once (the claim's primary key), the same token on every retry;
   * nothing while the invoice is unpaid.
   */
  async giveBack(owed: Owed, trx?: Database): Promise<GivenBack[]> {
    if (owed.kind === 'parts') return this.payouts.giveBack(owed, trx);
    if (trx) throw new Error('an unused payment is given back on its own, not in a transaction');
    const payment = owed.payment;
    const l402 = this.of(payment);
    if ((await this.lightning.invoiceState(l402.paymentHash)) !== 'paid') return [];
    const parts: OwedPart[] = [
      { purpose: 'change', subject: payment.key, amount: payment.amount, source: payment.source },
    ];
    try {
      await this.db.transaction().execute(async (trx) => {
        await this.claim(trx, payment, l402, 'returned');
        await this.payouts.giveBack({ kind: 'parts', parts }, trx);
      });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const row = await this.claimed(l402);
      // Claimed by a lease meanwhile: nothing to hand back (its replay answers).
      if (row?.outcome !== 'returned') return [];
    }
    this.limits?.paid(l402.paymentHash);
    return this.payouts.giveBack({ kind: 'parts', parts });
  }

  private of(payment: InspectedPayment): L402Payment {
    const l402 = this.readPayments.get(payment);
    if (!l402) throw new Error('a payment this rail did not read');
    return l402;
  }

  /**
   * The rejection of a macaroon whose invoice is not paid, else undefined. The backend is asked
   * before the macaroon's expiry is looked at: an expired credential whose invoice was paid is
   * money to hand back, not a payment to ask for again.
   */
  private async unpaid(l402: L402Payment): Promise<Rejection | undefined> {
    let state: Awaited<ReturnType<LightningBackend['invoiceState']>>;
    try {
      state = await this.lightning.invoiceState(l402.paymentHash);
    } catch (err) {
      throw new AlacarteError('mint_unavailable', 'the Lightning backend did not answer; try again', {
        cause: err,
      });
    }
    if (state === 'paid') return undefined;
    if (state === 'unpaid' && this.now().getTime() / 1000 > l402.validUntil)
      return reject('payment_required', 'this L402 credential has expired; ask for a new one');
    return reject(
      'payment_required',
      state === 'unpaid' ? 'the L402 invoice is not paid yet' : 'the L402 invoice expired unpaid',
    );
  }

  private async claim(
    trx: Database,
    payment: InspectedPayment,
    l402: L402Payment,
    outcome: 'claimed' | 'returned',
  ): Promise<void> {
    await trx
      .insertInto('l402_payments')
      .values({
        payment_hash: l402.paymentHash,
        key: payment.key,
        amount: payment.amount.toNumber(),
        unit: payment.amount.unit,
        outcome,
        created_at: this.now().getTime(),
      })
      .execute();
  }

  private claimed(l402: L402Payment) {
    return this.db
      .selectFrom('l402_payments')
      .select(['outcome'])
      .where('payment_hash', '=', l402.paymentHash)
      .executeTakeFirst();
  }
}

/**
 * The caveat binding a macaroon to its request, URL-encoded: `kind=create&offer=…&seconds=…&image=…`
 * or `kind=extend&lease=…&seconds=…`.
 */
function subjectCondition(subject: PaymentSubject): string {
  const fields: Record<string, string> =
    subject.kind === 'create'
      ? { kind: 'create', offer: subject.offer, seconds: String(subject.seconds), image: subject.image }
      : { kind: 'extend', lease: subject.leaseId, seconds: String(subject.seconds) };
  return new URLSearchParams(fields).toString();
}

/** subjectCondition with the price (`&amount=…`, whole units) it was offered at. */
function requestCondition(subject: PaymentSubject, price: Amount): string {
  return `${subjectCondition(subject)}&amount=${price.value}`;
}

function describe(subject: PaymentSubject): string {
  return subject.kind === 'create'
    ? `alacarte lease: ${subject.offer}, ${subject.seconds} s`
    : `alacarte extension: ${subject.seconds} s`;
}

function reject(code: Rejection['code'], message: string): Rejection {
  return { ok: false, code, message };
}
