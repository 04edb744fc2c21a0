import { createHash } from 'node:crypto';
import { Amount, U64_MAX } from '../../core/amount.js';
import { AlacarteError } from '../../core/errors.js';
import type { PaymentKey } from '../../core/ids.js';
import type { Logger } from '../../log.js';
import { isUniqueViolation } from '../../mint/store/mint-store.js';
import type { Database } from '../../store/database.js';
import type { OwnMintPayouts } from '../l402/l402-rail.js';
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
import type { Execution, X402Facilitator } from './facilitator.js';
import {
  type JournalRow,
  SETTLEMENT_GRACE_MS,
  SettlementJournal,
  SWEEP_BATCH,
  VALID_BEFORE_MARGIN_SECONDS,
} from './settlement-journal.js';
import { readPayment, type X402Payment } from './x402-payload.js';
import { encodeHeader, paymentRequiredOf, requirementsOf, requirementsV1Of } from './x402-requirements.js';
import { atomicOf, satsOf, v1NetworkOf, type X402Settings } from './x402-settings.js';

export interface X402RailOptions {
  db: Database;
  settings: X402Settings;
  /** The node's own facilitator (facilitator.ts): verifies and settles on the operator's chain. */
  facilitator: X402Facilitator;
  /** Change and refunds of x402-paid leases: ecash of the node's own mint (as for L402). */
  payouts: OwnMintPayouts;
  /** The own mint's URL: the payment source of x402 payments, so their payouts are its ecash. */
  mintUrl: () => string;
  /** The URL a subject is bought at (x402's `resource`): POST /v1/leases or …/{id}/extend. */
  resourceUrl: (subject: PaymentSubject) => string;
  /** The node's unit (prices); x402 amounts are converted from it at `settings.rate`. */
  unit: string;
  /**
   * How long a settlement sent is left to its payer's retry before the sweep resolves it (ms;
   * SETTLEMENT_GRACE_MS by default: see there why).
   */
  settlementGraceMs?: number;
  clock?: () => Date;
  logger?: Logger;
}

/** What one pass of `sweepSettlements` did with the journal rows it took (counts of rows). */
export interface SweepOutcome {
  /** Executed on the chain for the operator and never claimed: claimed now as returned, refund owed. */
  returned: number;
  /** Claimed first by the payment's own retry or by another replica (or request): nothing booked here. */
  claimedElsewhere: number;
  /** Can no longer move money (validBefore passed unexecuted, or the nonce went elsewhere): removed. */
  dropped: number;
  /** Not resolvable yet (not executed, still valid; or the chain did not answer): for a later pass. */
  left: number;
  /** Whether the chain failed to answer during the pass (it stopped there). */
  unreachable: boolean;
}

/** A claim in `x402_payments`, as the rail writes it. */
interface Claim {
  key: PaymentKey;
  /** The transaction that executed the authorization. */
  tx: string;
  /** The authorization's value, smallest units of the asset. */
  atomic: string;
  /** What it is worth in the node's unit. */
  amount: Amount;
}

/** The x402 settlement of a payment, as the `PAYMENT-RESPONSE` header carries it. */
export interface X402Settlement {
  success: true;
  transaction: string;
  network: string;
  payer: string;
}

/**
 * x402 (API.md, "x402 (EVM stablecoins) as a third payment rail"): a 402 carries x402's
 * `PAYMENT-REQUIRED` (v2, base64 JSON) and, in the body, v1's `x402Version` and `accepts` — the
 * `exact` scheme, the operator's network and asset, the price at the operator's rate, `payTo`. A
 * payer signs an EIP-3009 `transferWithAuthorization` and sends it in `PAYMENT-SIGNATURE` (v2) or
 * `X-PAYMENT` (v1). The node reads and checks it (signed by its payer, for the operator), lets the
 * lease service admit it by its key (payer and nonce: one authorization, one lease or extension),
 * then verifies and settles it through its own facilitator before the lease is granted, and claims
 * it in `x402_payments` in the transaction that records what it bought. Change and refunds come back
 * as ecash of the own mint. Money moves on the chain before that claim, so every settlement is
 * journaled first (settlement-journal.ts) and one that never reached its claim is resolved by
 * `sweepSettlements`: a paid request ends in a lease or a refund, also across a crash.
 */
export class X402Rail implements PaymentRail {
  readonly id = 'x402';
  private readonly db: Database;
  private readonly settings: X402Settings;
  private readonly facilitator: X402Facilitator;
  private readonly payouts: OwnMintPayouts;
  private readonly mintUrl: () => string;
  private readonly resourceUrl: (subject: PaymentSubject) => string;
  private readonly unit: string;
  private readonly graceMs: number;
  private readonly journal: SettlementJournal;
  private readonly now: () => Date;
  private readonly log: Logger | undefined;
  private readonly readPayments = new WeakMap<InspectedPayment, X402Payment>();

  constructor(options: X402RailOptions) {
    this.db = options.db;
    this.settings = options.settings;
    this.facilitator = options.facilitator;
    this.payouts = options.payouts;
    this.mintUrl = options.mintUrl;
    this.resourceUrl = options.resourceUrl;
    this.unit = options.unit;
    this.graceMs = options.settlementGraceMs ?? SETTLEMENT_GRACE_MS;
    this.journal = new SettlementJournal(options.db);
    this.now = options.clock ?? (() => new Date());
    this.log = options.logger;
  }

  /**
   * What /v1/offers says of this rail (`payment.x402`): where and in what to pay, and enough to
   * sign a payment without a 402 first (an agent paying through the MCP tools): the token's EIP-712
   * domain, the rate (a price of p sat is ceil(p × atomic_units / sats) of the asset's smallest
   * units) and how long an authorization may live.
   */
  describe(): Record<string, unknown> {
    const s = this.settings;
    return {
      scheme: 'exact',
      network: s.network,
      asset: s.asset,
      asset_name: s.assetName,
      asset_version: s.assetVersion,
      pay_to: s.payTo,
      rate: { atomic_units: s.rate.atomicUnits.toString(), sats: Number(s.rate.sats) },
      max_timeout_seconds: s.maxTimeoutSeconds,
    };
  }

  /** The x402 challenge for `price`: v2's PAYMENT-REQUIRED header and v1's body fields. */
  async challenge(price: Amount, subject: PaymentSubject): Promise<Challenge> {
    if (price.unit !== this.unit) return { instructions: '', headers: {}, body: {} };
    const amount = atomicOf(price, this.settings.rate);
    const resource = this.resourceUrl(subject);
    const description = describe(subject);
    return {
      instructions: 'or pay with x402 (PAYMENT-SIGNATURE or X-PAYMENT)',
      headers: {
        'payment-required': encodeHeader(paymentRequiredOf(this.settings, amount, resource, description)),
      },
      body: {
        x402Version: 1,
        accepts: [requirementsV1Of(this.settings, amount, resource, description)],
      },
    };
  }

  /**
   * PaymentRail.redeem: the x402 payment read and checked (no chain asked), admitted by the
   * caller, then taken: verified and settled by the facilitator, and claimed with its record.
   */
  async redeem(request: PaymentRequest, price: Amount): Promise<Redeemed | Rejection> {
    const read = await this.read(request.headers);
    if (!read.ok) return read;
    await request.admit?.(read.payment);
    return this.take(read.payment, price, request.record);
  }

  /**
   * The x402 settlement the payment in `headers` bought, as `PAYMENT-RESPONSE` shows it; undefined
   * when the request carries no x402 payment or it has not been claimed for a lease.
   */
  async settlementOf(headers: PaymentHeaders): Promise<X402Settlement | undefined> {
    const read = await this.read(headers);
    if (!read.ok) return undefined;
    const row = await this.db
      .selectFrom('x402_payments')
      .select(['tx', 'network', 'outcome'])
      .where('key', '=', read.payment.key)
      .executeTakeFirst();
    if (row?.outcome !== 'claimed') return undefined;
    const x = this.of(read.payment);
    // A v1 payer reads the chain by its v1 name, as it named it.
    const network = x.version === 1 ? (v1NetworkOf(row.network) ?? row.network) : row.network;
    return { success: true, transaction: row.tx, network, payer: x.payer };
  }

  private async read(headers: PaymentHeaders): Promise<{ ok: true; payment: InspectedPayment } | Rejection> {
    const read = await readPayment(headers, this.settings);
    if (!read.ok) return read.absent ? NO_PAYMENT : reject('x402_invalid', read.message);
    const x = read.payment;
    // What the rate makes of it must be an Amount: a value this large is no payment anyone makes.
    if ((x.value * this.settings.rate.sats) / this.settings.rate.atomicUnits > U64_MAX)
      return reject('x402_invalid', 'the x402 authorization is for more than this node counts');
    const a = x.authorization;
    const key = createHash('sha256')
      .update(`x402/${this.settings.network}/${this.settings.asset}/${a.from}/${a.nonce}`.toLowerCase())
      .digest('hex') as PaymentKey;
    const payment: InspectedPayment = {
      rail: this.id,
      key,
      amount: satsOf(x.value, this.settings.rate, this.unit),
      fee: Amount.zero(this.unit),
      source: this.mintUrl(),
      // A payment whose settlement the node has already sent (journaled or claimed) may have paid
      // before this request: a refusal it cannot cure — above all `token_spent` for a payment the
      // sweep returned — then shows its refund (giveBack unused), the same token every time.
      ...((await this.settlementSent(key)) ? { prepaid: true as const } : {}),
    };
    this.readPayments.set(payment, x);
    return { ok: true, payment };
  }

  /** Settles an admitted payment and claims it, in one transaction with its change and record. */
  private async take(
    payment: InspectedPayment,
    price: Amount,
    record: RecordPayment,
  ): Promise<Redeemed | Rejection> {
    const x = this.of(payment);
    const redeemed = redeemedOf(payment, price);
    if (!redeemed) {
      const asked = atomicOf(price, this.settings.rate);
      return reject('insufficient_amount', `the x402 authorization pays ${x.value}, this costs ${asked}`);
    }
    const prior = await this.claimed(payment.key);
    if (prior) return spent(prior.outcome);
    const settled = await this.settle(payment, x);
    if (!settled.ok) return settled;
    try {
      await this.db.transaction().execute(async (trx) => {
        await this.claim(trx, this.claimOf(payment, x, settled.tx), 'claimed');
        await this.payouts.giveBack({ kind: 'parts', parts: [changeOf(redeemed)] }, trx);
        await record(trx, redeemed);
      });
      return redeemed;
    } catch (err) {
      // Another replica claimed it first (its answer is the replay's), or it was handed back.
      const row = isUniqueViolation(err) ? await this.claimed(payment.key) : undefined;
      if (row) return spent(row.outcome);
      throw err;
    }
  }

  /**
   * Verifies and settles through the facilitator; the settling transaction, or the rejection (no
   * money moved). An authorization already executed on the chain for the operator (a settlement
   * whose answer was lost: a crash, a record that failed) counts as settled, never as a failure.
   * The settlement is journaled (committed) before the facilitator is asked to send it, so that one
   * whose request never reaches its claim is found by the sweep. Throws AlacarteError
   * `x402_unavailable` when the chain does not answer or the settlement is still pending.
   */
  private async settle(
    payment: InspectedPayment,
    x: X402Payment,
  ): Promise<{ ok: true; tx: string } | Rejection> {
    const requirements =
      x.version === 2
        ? requirementsOf(this.settings, x.value)
        : requirementsV1Of(this.settings, x.value, '', '');
    const a = x.authorization;
    const nowSeconds = BigInt(Math.floor(this.now().getTime() / 1000));
    const verified = await onChain(() => this.facilitator.verify(x.payload, requirements));
    if (!verified.isValid) {
      // Refused before anything was sent: nothing journaled.
      const done = await onChain(() => this.facilitator.executionOf(a));
      if (done.used && done.tx) return { ok: true, tx: done.tx };
      if (done.used) return reject('token_spent', "this x402 authorization's nonce has already been used");
      return refusal(verified.invalidReason, BigInt(a.validBefore) <= nowSeconds + 6n);
    }
    await this.journal.open(
      {
        key: payment.key,
        network: this.settings.network,
        asset: this.settings.asset,
        payer: a.from,
        nonce: a.nonce,
        atomic: x.value,
        validBefore: BigInt(a.validBefore),
        amount: payment.amount,
      },
      this.now().getTime(),
    );
    const settled = await onChain(() => this.facilitator.settle(x.payload, requirements));
    if (settled.success && settled.transaction) return { ok: true, tx: settled.transaction };
    const done = await onChain(() => this.facilitator.executionOf(a));
    if (done.used && done.tx) return { ok: true, tx: done.tx };
    // The nonce went to another transfer its payer signed: this authorization can never pay.
    if (done.used) await this.journal.resolve(this.db, payment.key);
    // Sent, but its receipt did not come in time (@x402/evm's `settlement_pending`): the transfer
    // may still be mined, so this is no refusal. Nothing is granted now; the payer's retry of
    // the same payment finds it on the chain above and gets what it paid for, once — or, should
    // the payer never come back, the sweep hands it back as ecash (the journal row stays).
    if (settled.errorReason === 'settlement_pending') throw settlementPending();
    // A failed settlement whose transaction may still have been sent (the facilitator cannot always
    // tell) keeps its journal row: the sweep drops it once its validBefore has passed unexecuted.
    this.log?.warn({ reason: settled.errorReason }, 'an x402 settlement failed');
    return reject('x402_settlement_failed', `the x402 payment could not be settled (${settled.errorReason})`);
  }

  /**
   * PaymentRail.giveBack. Parts owed (change, refunds) are ecash of the own mint (`payouts`). An
   * unused payment — settled, but what it paid for ended meanwhile — is handed back whole as ecash
   * of the own mint, booked once (the claim's primary key; its journal row resolved with it), the
   * same token on every retry, worth what the claim recorded (also one the sweep returned); nothing
   * when it was never settled (the payer's authorization is untouched). Throws AlacarteError
   * `x402_unavailable` when the chain must be asked and does not answer.
   */
  async giveBack(owed: Owed, trx?: Database): Promise<GivenBack[]> {
    if (owed.kind === 'parts') return this.payouts.giveBack(owed, trx);
    if (trx) throw new Error('an unused payment is given back on its own, not in a transaction');
    const payment = owed.payment;
    const x = this.of(payment);
    const prior = await this.claimed(payment.key);
    if (prior?.outcome === 'claimed') return [];
    if (!prior) {
      const done = await onChain(() => this.facilitator.executionOf(x.authorization));
      const tx = done.used ? done.tx : undefined;
      if (!tx) return [];
      // Claimed by a lease meanwhile: nothing to hand back (its replay answers).
      if ((await this.returnWhole(this.claimOf(payment, x, tx))) === 'claimed') return [];
    }
    return this.returned(payment.key);
  }

  /**
   * One pass of the settlement sweep: at most `limit` journal rows older than the grace period
   * (the payer's retry window), each asked about on the chain (X402Facilitator.executionOf).
   * Executed for the operator and never claimed: claimed as `returned`, the whole payment booked as
   * own-mint ecash owed to it (as `giveBack` books an unused payment), so that the payer's retry of
   * the same payment is answered with that refund, the same token every time. Not executed and its
   * validBefore passed (or its nonce spent on another transfer): dropped, nothing booked. Else left
   * for a later pass. The claim's primary key keeps one outcome when the payer's retry or another
   * replica's sweep claims the same payment meanwhile. When the chain does not answer the pass
   * stops there, leaves the rest for later and logs it once. Throws only what the store throws.
   */
  async sweepSettlements(limit = SWEEP_BATCH): Promise<SweepOutcome> {
    const now = this.now().getTime();
    const nowSeconds = BigInt(Math.floor(now / 1000));
    const outcome: SweepOutcome = {
      returned: 0,
      claimedElsewhere: 0,
      dropped: 0,
      left: 0,
      unreachable: false,
    };
    const rows = await this.journal.due(
      this.settings.network,
      this.settings.asset,
      now - this.graceMs,
      limit,
    );
    for (const [i, row] of rows.entries()) {
      let done: Execution;
      try {
        done = await this.facilitator.executionOf(row.authorization);
      } catch (err) {
        // To the back of the queue: a row the chain always fails on never blocks the others.
        await this.journal.checked(row.key, now);
        outcome.left += rows.length - i;
        outcome.unreachable = true;
        // Its name only: an RPC error may quote the RPC URL, which may hold the provider's key.
        this.log?.warn(
          { err: err instanceof Error ? err.name : 'error', left: rows.length - i },
          'the chain did not answer the x402 settlement sweep; left for the next pass',
        );
        break;
      }
      if (done.used && done.tx) {
        const claim = { key: row.key, tx: done.tx, atomic: row.authorization.value, amount: amountOf(row) };
        if ((await this.returnWhole(claim)) === 'booked') outcome.returned++;
        else outcome.claimedElsewhere++;
      } else if (done.used || row.validBefore + VALID_BEFORE_MARGIN_SECONDS <= nowSeconds) {
        // Used by another transfer its payer signed, or expired unexecuted: it can never pay.
        if (done.used)
          this.log?.warn({ key: row.key }, 'an x402 settlement sent was not found paying the operator');
        await this.journal.resolve(this.db, row.key);
        outcome.dropped++;
      } else {
        await this.journal.checked(row.key, now);
        outcome.left++;
      }
    }
    if (outcome.returned > 0)
      this.log?.warn(
        { returned: outcome.returned },
        'x402 payments settled but never claimed were returned as ecash',
      );
    return outcome;
  }

  /**
   * Claims `claim` as returned and books the whole of it as ecash of the own mint owed to the
   * payment, in one transaction that also resolves its journal row: `booked`. When the payment was
   * claimed first (a lease bought with it, or returned by another request or replica), nothing is
   * booked here and that claim's outcome is the answer.
   */
  private async returnWhole(claim: Claim): Promise<'booked' | 'claimed' | 'returned'> {
    try {
      await this.db.transaction().execute(async (trx) => {
        await this.claim(trx, claim, 'returned');
        await this.payouts.giveBack(
          { kind: 'parts', parts: this.returnedParts(claim.key, claim.amount) },
          trx,
        );
      });
      return 'booked';
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const row = await this.claimed(claim.key);
      if (!row) throw err;
      // Whoever claimed it resolved the journal row in the same transaction.
      return row.outcome;
    }
  }

  /** The tokens of a payment claimed as returned: its whole amount as stored, the same every call. */
  private async returned(key: PaymentKey): Promise<GivenBack[]> {
    const row = await this.db
      .selectFrom('x402_payments')
      .select(['amount', 'unit'])
      .where('key', '=', key)
      .where('outcome', '=', 'returned')
      .executeTakeFirst();
    if (!row) return [];
    const amount = Amount.of(BigInt(row.amount), row.unit);
    return this.payouts.giveBack({ kind: 'parts', parts: this.returnedParts(key, amount) });
  }

  private returnedParts(key: PaymentKey, amount: Amount): OwedPart[] {
    return [{ purpose: 'change', subject: key, amount, source: this.mintUrl() }];
  }

  private claimOf(payment: InspectedPayment, x: X402Payment, tx: string): Claim {
    return { key: payment.key, tx, atomic: x.value.toString(), amount: payment.amount };
  }

  /** Whether a settlement of the payment was ever sent by the node: journaled or claimed. */
  private async settlementSent(key: PaymentKey): Promise<boolean> {
    const row = await this.db
      .selectFrom('x402_settlements')
      .select('key')
      .where('key', '=', key)
      .unionAll(this.db.selectFrom('x402_payments').select('key').where('key', '=', key))
      .executeTakeFirst();
    return row !== undefined;
  }

  private of(payment: InspectedPayment): X402Payment {
    const x = this.readPayments.get(payment);
    if (!x) throw new Error('a payment this rail did not read');
    return x;
  }

  /** Claims the payment in `trx` and resolves its journal row there: one outcome, one transaction. */
  private async claim(trx: Database, claim: Claim, outcome: 'claimed' | 'returned'): Promise<void> {
    await trx
      .insertInto('x402_payments')
      .values({
        key: claim.key,
        network: this.settings.network,
        tx: claim.tx,
        atomic: claim.atomic,
        amount: claim.amount.toNumber(),
        unit: claim.amount.unit,
        outcome,
        created_at: this.now().getTime(),
      })
      .execute();
    await this.journal.resolve(trx, claim.key);
  }

  private claimed(key: PaymentKey) {
    return this.db.selectFrom('x402_payments').select(['outcome']).where('key', '=', key).executeTakeFirst();
  }
}

/** `call` to the chain; its failure as AlacarteError `x402_unavailable` (retry), the cause kept. */
async function onChain<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof AlacarteError) throw err;
    throw new AlacarteError('x402_unavailable', 'the chain did not answer; try again', { cause: err });
  }
}

/** What a journal row is worth, as the refund of a returned payment counts it. */
function amountOf(row: JournalRow): Amount {
  return Amount.of(row.amount, row.unit);
}

/** The rejection of a facilitator's `invalidReason` (x402's reasons, `@x402/evm`). */
function refusal(reason: string | undefined, expired: boolean): Rejection {
  const why = reason ?? 'unknown';
  if (expired || /valid_before|valid_after/.test(why))
    return reject('x402_expired', `the x402 authorization is not valid now (${why})`);
  if (/nonce_already_used/.test(why))
    return reject('token_spent', 'this x402 authorization has already been used');
  if (/insufficient_balance|simulation_failed|transaction_failed/.test(why))
    return reject('x402_settlement_failed', `the x402 payment cannot be settled (${why})`);
  return reject('x402_invalid', `the x402 payment is not valid (${why})`);
}

function spent(outcome: 'claimed' | 'returned'): Rejection {
  return outcome === 'returned'
    ? reject('token_spent', "this x402 authorization's payment was returned to its payer")
    : reject('token_spent', 'this x402 authorization has already bought a lease or extension');
}

function describe(subject: PaymentSubject): string {
  return subject.kind === 'create'
    ? `alacarte lease: ${subject.offer}, ${subject.seconds} s`
    : `alacarte extension: ${subject.seconds} s`;
}

function reject(code: Rejection['code'], message: string): Rejection {
  return { ok: false, code, message };
}

/** A settlement sent whose outcome is not known yet: 503, to be retried with the same payment. */
function settlementPending(): AlacarteError {
  return new AlacarteError(
    'x402_unavailable',
    'the x402 settlement was sent but is not confirmed yet; send the same request with the same payment again shortly (it is never charged twice)',
  );
}
