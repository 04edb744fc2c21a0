import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { AlacarteError } from '../core/errors.js';
import { leaseBooks, type MintFigures } from '../leases/ledger.js';
import { decodeBolt11, wrongNetwork } from '../lightning/bolt11.js';
import type { Logger } from '../log.js';
import { isUniqueViolation } from '../mint/store/mint-store.js';
import { normalizeMintUrl } from '../rails/cashu/proofs.js';
import type { Database } from '../store/database.js';
import type { OwnMintPayer } from './own-mint-payer.js';
import type { PayoutOutcome } from './payout-outcome.js';
import type { PayoutTables } from './payout-tables.js';
import type { TrustedMintPayer } from './trusted-mint-payer.js';

/** What `POST /v1/operator/payout` answers (API.md "Operator"): whole sat. */
export interface PayoutAnswer {
  /** The payout's id in the ledger. */
  id: string;
  /** 'own' or the trusted mint's URL. */
  source: string;
  paid: number;
  fee: number;
  state: 'paid' | 'pending';
}

export interface PayoutServiceOptions {
  db: Database;
  unit: string;
  /** Config `trustedMints`, as the ledger splits them. */
  trustedMints: readonly string[];
  own: OwnMintPayer;
  /** One payer per trusted mint. */
  trusted: readonly TrustedMintPayer[];
  /** Seconds since the epoch. */
  nowSeconds?: () => number;
  logger?: Logger;
}

type PayoutRow = Selectable<PayoutTables['payouts']>;

/**
 * Pays the node's earnings out over Lightning (README "Payouts"). The money rules:
 * - never more than the ledger's `payable` of the paying source: charged (earned by ended
 *   leases), less what was paid out and what a pending payout may take, and at the own mint less
 *   what x402 brought in (on chain already); money held for running leases is never touched;
 * - every payout is a row in `payouts`, written `pending` with the payment hash (own mint) or the
 *   melt quote id (trusted mint) before anything is paid, then resolved from the payer's own state
 *   — at the next start, and before any new payout — so a crash loses nothing and nothing is paid
 *   twice; while one is pending a new one is refused (409 payout_pending, also enforced by a
 *   unique index across processes).
 * An invoice has one payer: `from` names it ('own' or a trusted mint's URL); by default the own
 * mint when its unpaid earnings cover the invoice, else the trusted mint holding the most.
 */
export class PayoutService {
  private readonly db: Database;
  private readonly nowSeconds: () => number;
  private readonly log: Logger | undefined;
  /** One payout at a time in this process (the store's unique index covers other processes). */
  private busy = false;
  /** Re-asks the payer about a pending payout, with backoff, until it resolves (`follow`). */
  private follower: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: PayoutServiceOptions) {
    this.db = options.db;
    this.nowSeconds = options.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
    this.log = options.logger;
  }

  /**
   * Pays BOLT11 invoice `to` out of the earnings at `from` (see the class). Throws AlacarteError:
   * invalid_invoice, amountless_invoice (400); payout_pending, payout_too_large,
   * invoice_already_paid (409); payout_failed (502, nothing paid); mint_unavailable (503).
   */
  async payout(to: string, from?: string): Promise<PayoutAnswer> {
    const invoice = decodeBolt11(to);
    if (invoice === undefined) throw new AlacarteError('invalid_invoice', 'not a valid BOLT11 invoice');
    if (invoice.amountMsat === undefined)
      throw new AlacarteError(
        'amountless_invoice',
        'the invoice names no amount: ask for an invoice of the amount to pay out (the ledger shows `unpaid`)',
      );
    if (invoice.amountMsat <= 0n) throw new AlacarteError('invalid_invoice', 'the invoice asks for nothing');
    if (invoice.amountMsat % 1000n !== 0n)
      throw new AlacarteError('invalid_invoice', 'the invoice asks for a fraction of a sat');
    if (invoice.expiresAt.getTime() <= Date.now())
      throw new AlacarteError('invalid_invoice', 'the invoice has expired');
    const amount = invoice.amountMsat / 1000n;
    if (this.busy) throw pendingError();
    this.busy = true;
    try {
      await this.resolvePending();
      if (await this.hasPending()) throw pendingError();
      const earlier = await this.db
        .selectFrom('payouts')
        .select('id')
        .where('payment_hash', '=', invoice.paymentHash)
        .where('state', '=', 'paid')
        .executeTakeFirst();
      if (earlier) throw new AlacarteError('invoice_already_paid', 'this invoice was paid out already');
      const sources = await this.sources();
      const source = this.choose(sources, amount, from);
      let answer: PayoutAnswer;
      if (source.name === 'own') {
        const otherChain = wrongNetwork(invoice, this.options.own.network);
        if (otherChain) throw new AlacarteError('invalid_invoice', otherChain);
        answer = await this.payOwn(to, invoice.paymentHash, amount, source.unpaid);
      } else {
        const payer = this.options.trusted.find(
          (p) => normalizeMintUrl(p.url) === normalizeMintUrl(source.name),
        );
        if (!payer) throw new Error('a trusted source without its payer');
        answer = await this.payTrusted(payer, to, invoice.paymentHash, amount, source.unpaid);
      }
      if (answer.state === 'pending') this.follow();
      return answer;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Keeps asking about pending payouts (first after `delayMs`, then twice as long each time, at
   * most a minute apart) until none is left, so the ledger shows the outcome without a new payout
   * or restart. The timer is unref'd: it never keeps the process alive.
   */
  follow(delayMs = 500): void {
    if (this.closed || this.follower !== undefined) return;
    this.follower = setTimeout(() => {
      this.follower = undefined;
      const next = Math.min(delayMs * 2, 60_000);
      if (this.busy) {
        this.follow(next);
        return;
      }
      this.busy = true;
      this.resolvePending()
        .then(() => this.hasPending())
        .then(
          (stillPending) => {
            this.busy = false;
            if (stillPending) this.follow(next);
          },
          (err: unknown) => {
            this.busy = false;
            this.log?.warn({ err }, 'payout: re-check failed; trying again later');
            this.follow(next);
          },
        );
    }, delayMs);
    this.follower.unref();
  }

  /** Stops following pending payouts (the next start picks them up). */
  close(): void {
    this.closed = true;
    if (this.follower !== undefined) clearTimeout(this.follower);
    this.follower = undefined;
  }

  /** Resolves every pending payout from its payer's state (at start, and before each payout). */
  async resolvePending(): Promise<void> {
    const pending = await this.db.selectFrom('payouts').selectAll().where('state', '=', 'pending').execute();
    for (const row of pending) {
      let outcome: PayoutOutcome;
      if (row.source === 'own') {
        outcome = await this.options.own.state(row.payment_hash);
      } else {
        const payer = this.options.trusted.find(
          (p) => normalizeMintUrl(p.url) === normalizeMintUrl(row.source),
        );
        if (!payer || row.melt_quote_id === null || row.inputs === null) {
          this.log?.error({ payout: row.id }, 'payout pending at a mint no longer trusted; left pending');
          continue;
        }
        outcome = await payer.state(row.id, row.melt_quote_id, BigInt(row.amount), BigInt(row.inputs));
      }
      await this.settle(row.id, outcome);
      if (outcome.state !== 'pending')
        this.log?.info({ payout: row.id, state: outcome.state }, 'payout resolved');
    }
  }

  private async payOwn(
    request: string,
    paymentHash: string,
    amount: bigint,
    unpaid: bigint,
  ): Promise<PayoutAnswer> {
    // The mint's melt fee reserve (1 %, at least 2 sat), never beyond what is unpaid.
    const reserve = maxBig(2n, (amount * 10n + 999n) / 1000n);
    const feeReserve = minBig(reserve, unpaid - amount);
    const row = await this.recordPending({
      source: 'own',
      request,
      payment_hash: paymentHash,
      melt_quote_id: null,
      amount: Number(amount),
      fee_reserve: Number(feeReserve),
      inputs: null,
    });
    const outcome = await this.options.own.pay(request, paymentHash, feeReserve);
    return this.answer(row, await this.settle(row.id, outcome));
  }

  private async payTrusted(
    payer: TrustedMintPayer,
    request: string,
    paymentHash: string,
    amount: bigint,
    unpaid: bigint,
  ): Promise<PayoutAnswer> {
    // Only the payouts whose change may still be held here, not every payout ever made: a change
    // found all spent is marked so, once, and never asked about again.
    const earlier = await this.db
      .selectFrom('payouts')
      .select('id')
      .where('source', '=', payer.url)
      .where('state', '=', 'paid')
      .where('change_spent', '=', 0)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    const prepared = await payer.prepare(
      request,
      earlier.map((r) => r.id),
    );
    if (prepared.changeSpent.length > 0)
      await this.db
        .updateTable('payouts')
        .set({ change_spent: 1 })
        .where('id', 'in', prepared.changeSpent)
        .execute();
    if ('short' in prepared)
      throw tooLarge(
        `the ecash held at ${payer.url} does not cover the invoice and its fees`,
        unpaid,
        maxBig(0n, amount - prepared.short),
      );
    if (prepared.amount !== amount)
      throw new AlacarteError('invalid_invoice', 'the mint quoted another amount');
    if (prepared.amount + prepared.feeReserve > unpaid)
      throw tooLarge(
        `the invoice and the mint's fee reserve (${prepared.feeReserve}) exceed the earnings unpaid at ${payer.url}`,
        unpaid,
        maxBig(0n, unpaid - prepared.feeReserve),
      );
    const row = await this.recordPending({
      source: payer.url,
      request,
      payment_hash: paymentHash,
      melt_quote_id: prepared.quote.quote,
      amount: Number(amount),
      fee_reserve: Number(prepared.feeReserve),
      inputs: Number(prepared.inputs),
    });
    const outcome = await payer.melt(row.id, prepared);
    return this.answer(row, await this.settle(row.id, outcome));
  }

  private async recordPending(
    fields: Omit<
      PayoutRow,
      'id' | 'state' | 'fee' | 'reason' | 'created_at' | 'resolved_at' | 'change_spent'
    >,
  ): Promise<PayoutRow> {
    const row: PayoutRow = {
      id: randomUUID(),
      ...fields,
      fee: null,
      state: 'pending',
      reason: null,
      created_at: this.nowSeconds(),
      resolved_at: null,
      change_spent: 0,
    };
    try {
      await this.db.insertInto('payouts').values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw pendingError();
      throw err;
    }
    // Another process (the CLI beside the server) may have paid out between the check and the
    // insert. Now that this row holds the only pending slot, the ledger is final: it must still
    // fit, its own reservation included.
    const after = (await this.sources(false)).find(
      (s) => normalizeMintUrl(s.name) === normalizeMintUrl(row.source),
    );
    if (after === undefined || after.unpaid < 0n) {
      await this.settle(row.id, { state: 'failed', reason: 'more than was unpaid when booked' });
      throw tooLarge('another payout took the earnings meanwhile', 0n);
    }
    return row;
  }

  /** Books a payer's answer on a pending payout; returns it. */
  private async settle(id: string, outcome: PayoutOutcome): Promise<PayoutOutcome> {
    if (outcome.state === 'pending') return outcome;
    await this.db
      .updateTable('payouts')
      .set({
        state: outcome.state,
        fee: outcome.state === 'paid' ? Number(outcome.fee) : null,
        reason: outcome.state === 'failed' ? outcome.reason.slice(0, 500) : null,
        resolved_at: this.nowSeconds(),
      })
      .where('id', '=', id)
      .where('state', '=', 'pending')
      .execute();
    return outcome;
  }

  private answer(row: PayoutRow, outcome: PayoutOutcome): PayoutAnswer {
    if (outcome.state === 'failed')
      throw new AlacarteError('payout_failed', `the payment failed, nothing was paid: ${outcome.reason}`, {
        details: { id: row.id },
      });
    return {
      id: row.id,
      source: row.source,
      paid: row.amount,
      fee: outcome.state === 'paid' ? Number(outcome.fee) : 0,
      state: outcome.state,
    };
  }

  /** Whether a payout is pending (in any process). */
  async hasPending(): Promise<boolean> {
    const row = await this.db
      .selectFrom('payouts')
      .select('id')
      .where('state', '=', 'pending')
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * What each source may pay out, from the ledger (`payable`: the own mint's unpaid less what x402
   * brought in, which reached the operator on chain). Unclamped, below 0 when payouts booked
   * meanwhile took more than there was.
   */
  private async sources(clamp = true): Promise<Array<{ name: string; unpaid: bigint }>> {
    const books = await leaseBooks(this.db, this.options.unit, this.options.trustedMints);
    const of = (m: MintFigures) => BigInt(clamp ? m.payable : m.unpaid - m.on_chain);
    return [
      { name: 'own', unpaid: of(books.byMint.own) },
      ...books.byMint.trusted.map((m) => ({ name: m.mint, unpaid: of(m) })),
    ];
  }

  private choose(
    sources: Array<{ name: string; unpaid: bigint }>,
    amount: bigint,
    from: string | undefined,
  ): { name: string; unpaid: bigint } {
    if (from !== undefined) {
      const named =
        from === 'own'
          ? sources[0]
          : sources.find((s) => s.name !== 'own' && normalizeMintUrl(s.name) === normalizeMintUrl(from));
      if (!named)
        throw new AlacarteError('invalid_request', "`from` must be 'own' or one of the trusted mints");
      if (amount > named.unpaid)
        throw tooLarge(`the invoice asks more than is unpaid at ${named.name}`, named.unpaid);
      return named;
    }
    const own = sources[0]!;
    if (amount <= own.unpaid) return own;
    const richest = sources
      .slice(1)
      .sort((a, b) => (b.unpaid > a.unpaid ? 1 : b.unpaid < a.unpaid ? -1 : 0))[0];
    if (richest && amount <= richest.unpaid) return richest;
    throw tooLarge(
      'the invoice asks more than any one source has unpaid',
      maxBig(own.unpaid, richest?.unpaid ?? 0n),
    );
  }
}

function pendingError(): AlacarteError {
  return new AlacarteError(
    'payout_pending',
    'a payout is pending; it resolves before another can start, retry later',
  );
}

/**
 * `unpaid`: what the source holds unpaid; `payable`: the largest invoice it could pay now, when
 * fees make that less (a trusted mint's fee reserve and input fees come out of the same ecash).
 */
function tooLarge(message: string, unpaid: bigint, payable: bigint = unpaid): AlacarteError {
  return new AlacarteError('payout_too_large', `${message}; nothing was paid`, {
    details: { unpaid: Number(unpaid), payable: Number(payable) },
  });
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
