import { Amount } from '../core/amount.js';
import { decodeBolt11, wrongNetwork } from '../lightning/bolt11.js';
import type { PaymentOutcome } from '../lightning/lightning-backend.js';
import { logRef } from '../log.js';
import { invalidRequest, MintError, MintErrorCode } from './errors.js';
import { checkInputs, type VerifiedInput, verifyInputs, yOfSecret } from './inputs.js';
import { METHOD, type MintCore, UNIT } from './mint-core.js';
import { type CheckedOutput, checkOutputs, imprintChange, signOutputs } from './outputs.js';
import { PendingMelts } from './pending-melts.js';
import {
  getMeltQuote,
  getMintQuote,
  insertProofs,
  insertSignatures,
  isUniqueViolation,
  type MintTrx,
  proofStates,
  signedOutputs,
} from './store/mint-store.js';
import type { MintMeltQuotesTable } from './store/tables.js';
import type {
  BlindedMessage,
  BlindSignature,
  MeltQuoteRequest,
  MeltQuoteResponse,
  MeltRequest,
  Proof,
} from './types.js';

/**
 * NUT-05 melt with BOLT11 (NUT-23) and NUT-08 change. Inputs are held PENDING while Lightning
 * pays, then SPENT on success or released on failure; an invoice of this mint settles internally
 * (no Lightning payment: its mint quote becomes PAID).
 */
export class MeltService {
  /** melts whose payment is in flight, re-checked until they end */
  private readonly pending: PendingMelts;

  constructor(
    private readonly core: MintCore,
    /** Lightning fee reserve of external melts: max(min, ceil(amount * ppk / 1000)) */
    private readonly feeReserve: { ppk: number; min: number },
  ) {
    this.pending = new PendingMelts(
      async (id) => (await this.getMeltQuote(id)).state === 'PENDING',
      core.log,
    );
  }

  /** Stops following pending melts (they are picked up again at the next start). */
  close(): void {
    this.pending.close();
  }

  async createMeltQuote(request: MeltQuoteRequest & { options?: unknown }): Promise<MeltQuoteResponse> {
    this.core.requireUnit(request.unit);
    const invoice = decodeBolt11(request.request);
    if (invoice === undefined) throw invalidRequest('request is not a valid BOLT11 invoice');
    const otherChain = wrongNetwork(invoice, this.core.lightning.network);
    if (otherChain) throw invalidRequest(otherChain);
    if (invoice.amountMsat === undefined || invoice.amountMsat === 0n) {
      throw new MintError(MintErrorCode.amountlessInvoice, 'amountless invoices are not supported');
    }
    const now = this.core.nowSeconds();
    const invoiceExpiry = Math.floor(invoice.expiresAt.getTime() / 1000);
    if (invoiceExpiry <= now) throw invalidRequest('invoice has expired');
    const amountBig = (invoice.amountMsat + 999n) / 1000n;
    if (
      amountBig < BigInt(this.core.limits.meltMinAmount) ||
      amountBig > BigInt(this.core.limits.meltMaxAmount)
    ) {
      throw new MintError(
        MintErrorCode.amountOutOfRange,
        `amount must be within ${this.core.limits.meltMinAmount}..${this.core.limits.meltMaxAmount} ${UNIT}`,
      );
    }
    const amount = Number(amountBig);
    const own = await this.core.db
      .selectFrom('mint_mint_quotes')
      .select(['id', 'state', 'unit'])
      .where('payment_hash', '=', invoice.paymentHash)
      .executeTakeFirst();
    if (own !== undefined && (await this.core.refreshMintQuote(own.id)).state !== 'UNPAID') {
      throw new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
    }
    if (own === undefined) {
      const paid = await this.core.db
        .selectFrom('mint_melt_quotes')
        .select('id')
        .where('payment_hash', '=', invoice.paymentHash)
        .where('state', '=', 'PAID')
        .executeTakeFirst();
      if (paid !== undefined) throw new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
    }
    const feeReserve =
      own !== undefined ? 0 : Math.max(this.feeReserve.min, Math.ceil((amount * this.feeReserve.ppk) / 1000));
    const row: MintMeltQuotesTable = {
      id: this.core.quoteId(),
      method: METHOD,
      unit: UNIT,
      request: request.request,
      payment_hash: invoice.paymentHash,
      amount,
      fee_reserve: feeReserve,
      state: 'UNPAID',
      expiry: Math.min(invoiceExpiry, now + this.core.limits.meltQuoteTtlSeconds),
      created_at: now,
      paid_at: null,
      payment_preimage: null,
      fee_paid: null,
      internal_mint_quote_id: own?.id ?? null,
      pending_inputs_net: null,
      pending_outputs: null,
    };
    await this.core.db.insertInto('mint_melt_quotes').values(row).execute();
    return meltQuoteResponse(row, []);
  }

  /** NUT-05 quote state; a PENDING quote asks the Lightning backend how its payment went. */
  async getMeltQuote(id: string): Promise<MeltQuoteResponse> {
    let quote = await getMeltQuote(this.core.db, id);
    if (quote === undefined) throw invalidRequest('unknown quote', 404);
    if (quote.state === 'PENDING' && quote.internal_mint_quote_id === null) {
      const outcome = await this.askPayment(quote);
      quote = await this.finishMelt(quote, outcome);
    }
    return this.meltResponse(quote);
  }

  /**
   * NUT-05 melt (synchronous). A retry of a melt that was paid (NUT-19) gets the paid quote with its
   * change again, provided its inputs are the ones that paid it.
   */
  async melt(request: MeltRequest): Promise<MeltQuoteResponse> {
    const quote = await getMeltQuote(this.core.db, request.quote);
    if (quote === undefined) throw invalidRequest('unknown quote', 404);
    if (quote.state === 'PENDING') throw new MintError(MintErrorCode.quotePending, 'quote is pending');
    if (quote.state === 'PAID') {
      if (await this.paidBy(quote.id, request.inputs)) return this.meltResponse(quote);
      throw new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
    }
    const now = this.core.nowSeconds();
    if (Number(quote.expiry) < now) throw new MintError(MintErrorCode.quoteExpired, 'quote is expired');

    const inputs = checkInputs(this.core.registry, request.inputs, this.core.limits.maxInputs);
    if (inputs.unit !== quote.unit) {
      throw new MintError(MintErrorCode.unitMismatch, `inputs must be in ${quote.unit}`);
    }
    const blanks = checkOutputs(this.core.registry, request.outputs ?? [], {
      maxOutputs: this.core.limits.maxOutputs,
      unit: quote.unit,
      blank: true,
    });
    const net = inputs.total - inputs.fee;
    const needed = BigInt(quote.amount) + BigInt(quote.fee_reserve);
    if (net < needed) {
      throw new MintError(
        MintErrorCode.unbalanced,
        `inputs (${inputs.total}) - fee (${inputs.fee}) do not cover amount + fee_reserve (${needed})`,
      );
    }
    const verified = verifyInputs(inputs.inputs, { outputs: request.outputs ?? [], now, quoteId: quote.id });
    const already = await signedOutputs(
      this.core.db,
      blanks.outputs.map((o) => o.B_),
    );
    if (already.size > 0)
      throw new MintError(MintErrorCode.outputsAlreadySigned, 'outputs have already been signed');

    if (quote.internal_mint_quote_id !== null) {
      return this.meltInternally(quote, quote.internal_mint_quote_id, verified, blanks.outputs, net);
    }

    // External payment: inputs PENDING first, so they cannot be spent twice while Lightning works.
    const pendingOutputs = JSON.stringify(request.outputs ?? []);
    try {
      await this.core.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('mint_melt_quotes')
          .set({ state: 'PENDING', pending_inputs_net: Number(net), pending_outputs: pendingOutputs })
          .where('id', '=', quote.id)
          .where('state', '=', 'UNPAID')
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1)
          throw new MintError(MintErrorCode.quotePending, 'quote is pending');
        await insertProofs(trx, this.core.proofRows(verified, 'PENDING', quote.id, now));
      });
    } catch (err) {
      if (isUniqueViolation(err)) {
        const states = await proofStates(
          this.core.db,
          verified.map((v) => v.Y),
        );
        if (states.size === 0) {
          // The partial index on payment_hash: another quote for this invoice is being paid or was paid.
          throw await this.otherPaymentOf(quote);
        }
      }
      throw await this.core.explainConflict(err, verified, []);
    }
    this.core.events.emit({ kind: 'melt_quote', id: quote.id });
    this.core.proofsChanged(verified, 'PENDING');
    const pending: MintMeltQuotesTable = {
      ...quote,
      state: 'PENDING',
      pending_inputs_net: Number(net),
      pending_outputs: pendingOutputs,
    };
    let outcome: PaymentOutcome;
    try {
      outcome = await this.core.lightning.payInvoice(quote.request, Amount.of(quote.fee_reserve, quote.unit));
    } catch (err) {
      this.core.log.warn(
        { err, quoteRef: logRef(quote.id) },
        'melt: payInvoice threw; asking for the payment state',
      );
      outcome = await this.askPayment(quote);
    }
    const finished = await this.finishMelt(pending, outcome);
    if (finished.state === 'UNPAID') {
      const reason = outcome.state === 'failed' ? outcome.reason : 'payment failed';
      throw new MintError(MintErrorCode.lightningPaymentFailed, `Lightning payment failed: ${reason}`);
    }
    if (finished.state === 'PENDING') this.pending.watch(finished.id);
    return this.meltResponse(finished);
  }

  /** At start: every melt a previous run left PENDING is settled or released as Lightning says. */
  async recoverPendingMelts(): Promise<void> {
    const pending = await this.core.db
      .selectFrom('mint_melt_quotes')
      .selectAll()
      .where('state', '=', 'PENDING')
      .execute();
    for (const quote of pending) {
      const finished = await this.finishMelt(quote, await this.askPayment(quote));
      if (finished.state === 'PENDING') this.pending.watch(finished.id);
    }
  }

  private async meltInternally(
    quote: MintMeltQuotesTable,
    mintQuoteId: string,
    verified: VerifiedInput[],
    blanks: CheckedOutput[],
    net: bigint,
  ): Promise<MeltQuoteResponse> {
    const mintQuote = await getMintQuote(this.core.db, mintQuoteId);
    if (mintQuote === undefined || mintQuote.state !== 'UNPAID') {
      throw new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
    }
    // Someone may have paid the invoice over Lightning meanwhile: then it is not ours to settle.
    const state = await this.core.lightning.invoiceState(mintQuote.payment_hash).catch((err: unknown) => {
      this.core.log.warn({ err, quoteRef: logRef(quote.id) }, 'melt: invoice state unknown');
      throw new MintError(MintErrorCode.lightningPaymentFailed, 'invoice state unknown, try again');
    });
    if (state === 'paid') {
      await this.core.markMintQuotePaid(mintQuote.id);
      throw new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
    }
    const changeOutputs = imprintChange(blanks, net - BigInt(quote.amount));
    const change = signOutputs(changeOutputs);
    const now = this.core.nowSeconds();
    const settled: MintMeltQuotesTable = { ...quote, state: 'PAID', paid_at: now, fee_paid: 0 };
    const response = meltQuoteResponse(settled, change);
    try {
      await this.core.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('mint_melt_quotes')
          .set({ state: 'PAID', paid_at: now, fee_paid: 0 })
          .where('id', '=', quote.id)
          .where('state', '=', 'UNPAID')
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1)
          throw new MintError(MintErrorCode.quotePending, 'quote is pending');
        const paid = await trx
          .updateTable('mint_mint_quotes')
          .set({ state: 'PAID', paid_at: now, paid_by_melt_quote_id: quote.id })
          .where('id', '=', mintQuoteId)
          .where('state', '=', 'UNPAID')
          .executeTakeFirst();
        if (Number(paid.numUpdatedRows) !== 1) {
          throw new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
        }
        await insertProofs(trx, this.core.proofRows(verified, 'SPENT', quote.id, now));
        await insertSignatures(
          trx,
          change,
          changeOutputs.map((o) => o.B_),
          now,
          quote.id,
        );
      });
    } catch (err) {
      const explained = await this.core.explainConflict(err, verified, changeOutputs);
      // No proof or output conflicts: the one-payment index refused a second settlement of the invoice.
      if (explained instanceof MintError && explained.code === MintErrorCode.quotePending)
        throw await this.otherPaymentOf(quote);
      throw explained;
    }
    this.core.events.emit({ kind: 'mint_quote', id: mintQuoteId });
    this.core.events.emit({ kind: 'melt_quote', id: quote.id });
    this.core.proofsChanged(verified, 'SPENT');
    this.core.log.info(
      { quoteRef: logRef(quote.id), mintQuote: mintQuoteId, amount: quote.amount },
      'melt settled internally',
    );
    return response;
  }

  /** Settles (paid), releases (failed) or keeps (pending) a PENDING external melt. */
  private async finishMelt(
    quote: MintMeltQuotesTable,
    outcome: PaymentOutcome,
  ): Promise<MintMeltQuotesTable> {
    const now = this.core.nowSeconds();
    if (outcome.state === 'pending') return quote;
    if (outcome.state === 'failed') {
      const released = await this.core.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('mint_melt_quotes')
          .set({ state: 'UNPAID', pending_inputs_net: null, pending_outputs: null })
          .where('id', '=', quote.id)
          .where('state', '=', 'PENDING')
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1) return undefined;
        const held = await heldInputs(trx, quote.id);
        await trx
          .deleteFrom('mint_proofs')
          .where('melt_quote_id', '=', quote.id)
          .where('state', '=', 'PENDING')
          .execute();
        return held;
      });
      if (released !== undefined) {
        this.core.events.emit({ kind: 'melt_quote', id: quote.id });
        this.core.events.emit({
          kind: 'proof_state',
          states: released.map((r) => ({ Y: r.y, state: 'UNSPENT' as const, witness: null })),
        });
      }
      this.core.log.warn(
        { quoteRef: logRef(quote.id), reason: outcome.reason },
        'melt payment failed; inputs released',
      );
      return (await getMeltQuote(this.core.db, quote.id)) ?? quote;
    }
    const feePaid = outcome.feePaid.value;
    let changeOutputs: CheckedOutput[] = [];
    if (quote.pending_outputs !== null && quote.pending_inputs_net !== null) {
      const overpaid = BigInt(quote.pending_inputs_net) - BigInt(quote.amount) - feePaid;
      if (overpaid < 0n)
        this.core.log.error(
          { quoteRef: logRef(quote.id), feePaid: String(feePaid) },
          'melt fee exceeded reserve',
        );
      const blanks = JSON.parse(quote.pending_outputs) as BlindedMessage[];
      try {
        const checked = checkOutputs(this.core.registry, blanks, {
          maxOutputs: this.core.limits.maxOutputs,
          unit: quote.unit,
          blank: true,
        });
        changeOutputs = imprintChange(checked.outputs, overpaid);
      } catch (err) {
        // A keyset deactivated while the payment was in flight: the change cannot be signed.
        this.core.log.warn({ err, quoteRef: logRef(quote.id) }, 'melt change outputs no longer valid');
      }
    }
    const change = signOutputs(changeOutputs);
    let spent: Array<{ y: string; witness: string | null }> = [];
    const settle = async (withChange: boolean) => {
      let response: MeltQuoteResponse | undefined;
      await this.core.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('mint_melt_quotes')
          .set({
            state: 'PAID',
            paid_at: now,
            payment_preimage: outcome.preimage,
            fee_paid: Number(feePaid),
            pending_inputs_net: null,
            pending_outputs: null,
          })
          .where('id', '=', quote.id)
          .where('state', '=', 'PENDING')
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1) return;
        spent = await heldInputs(trx, quote.id);
        await trx
          .updateTable('mint_proofs')
          .set({ state: 'SPENT' })
          .where('melt_quote_id', '=', quote.id)
          .where('state', '=', 'PENDING')
          .execute();
        if (withChange) {
          await insertSignatures(
            trx,
            change,
            changeOutputs.map((o) => o.B_),
            now,
            quote.id,
          );
        }
        const settled: MintMeltQuotesTable = {
          ...quote,
          state: 'PAID',
          paid_at: now,
          payment_preimage: outcome.preimage,
          fee_paid: Number(feePaid),
        };
        response = meltQuoteResponse(settled, withChange ? change : []);
      });
      return response;
    };
    try {
      await settle(true);
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      // The wallet reused its blank outputs elsewhere meanwhile; the payment stands, without change.
      this.core.log.warn(
        { quoteRef: logRef(quote.id) },
        'melt change outputs were signed meanwhile; settling without change',
      );
      await settle(false);
    }
    if (spent.length > 0) {
      this.core.events.emit({ kind: 'melt_quote', id: quote.id });
      this.core.events.emit({
        kind: 'proof_state',
        states: spent.map((r) => ({ Y: r.y, state: 'SPENT' as const, witness: r.witness })),
      });
    }
    this.core.log.info(
      { quoteRef: logRef(quote.id), amount: quote.amount, feePaid: String(feePaid) },
      'melt paid',
    );
    return (await getMeltQuote(this.core.db, quote.id)) ?? quote;
  }

  /**
   * Why this quote's invoice cannot be paid now: another quote for it holds the one payment the
   * partial unique index allows — 20006 when that payment is done, 20005 while it is in flight.
   */
  private async otherPaymentOf(quote: MintMeltQuotesTable): Promise<MintError> {
    const other = await this.core.db
      .selectFrom('mint_melt_quotes')
      .select('state')
      .where('payment_hash', '=', quote.payment_hash)
      .where('id', '!=', quote.id)
      .where('state', '!=', 'UNPAID')
      .executeTakeFirst();
    if (other?.state === 'PAID')
      return new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
    return new MintError(MintErrorCode.quotePending, 'a payment of this invoice is pending');
  }

  /** The current state of a melt quote as NUT-05 answers it, read from the store without asking Lightning. */
  async storedMeltQuote(id: string): Promise<MeltQuoteResponse | undefined> {
    const quote = await getMeltQuote(this.core.db, id);
    return quote === undefined ? undefined : this.meltResponse(quote);
  }

  private async askPayment(quote: MintMeltQuotesTable): Promise<PaymentOutcome> {
    try {
      return await this.core.lightning.paymentState(quote.payment_hash);
    } catch (err) {
      this.core.log.warn(
        { err, quoteRef: logRef(quote.id) },
        'melt: payment state unknown; keeping it pending',
      );
      return { state: 'pending' };
    }
  }

  private async meltResponse(quote: MintMeltQuotesTable): Promise<MeltQuoteResponse> {
    if (quote.state !== 'PAID') return meltQuoteResponse(quote, []);
    const rows = await this.core.db
      .selectFrom('mint_signatures')
      .selectAll()
      .where('melt_quote_id', '=', quote.id)
      .orderBy('amount')
      .execute();
    const change = rows.map((row) => ({
      amount: Number(row.amount),
      id: row.keyset_id,
      C_: row.c_,
      dleq: { e: row.dleq_e, s: row.dleq_s },
    }));
    return meltQuoteResponse(quote, change);
  }

  /** True when every one of these inputs was spent by this melt quote. */
  private async paidBy(quoteId: string, inputs: readonly Proof[]): Promise<boolean> {
    if (inputs.length === 0 || inputs.length > this.core.limits.maxInputs) return false;
    const ys = inputs.map((p) => yOfSecret(p.secret));
    const rows = await this.core.db
      .selectFrom('mint_proofs')
      .select(['y', 'state', 'melt_quote_id'])
      .where('y', 'in', [...new Set(ys)])
      .execute();
    const byY = new Map(rows.map((r) => [r.y, r]));
    return ys.every((y) => byY.get(y)?.state === 'SPENT' && byY.get(y)?.melt_quote_id === quoteId);
  }
}

/** The inputs a melt holds (PENDING) or spent, for NUT-07 notifications. */
async function heldInputs(
  trx: MintTrx,
  meltQuoteId: string,
): Promise<Array<{ y: string; witness: string | null }>> {
  return trx
    .selectFrom('mint_proofs')
    .select(['y', 'witness'])
    .where('melt_quote_id', '=', meltQuoteId)
    .where('state', '=', 'PENDING')
    .execute();
}

export function meltQuoteResponse(row: MintMeltQuotesTable, change: BlindSignature[]): MeltQuoteResponse {
  const response: MeltQuoteResponse = {
    quote: row.id,
    request: row.request,
    amount: Number(row.amount),
    unit: row.unit,
    fee_reserve: Number(row.fee_reserve),
    state: row.state,
    expiry: Number(row.expiry),
    payment_preimage: row.payment_preimage,
  };
  if (row.state === 'PAID') response.change = change;
  return response;
}
