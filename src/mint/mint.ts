import { randomBytes } from 'node:crypto';
import type SQLite from 'better-sqlite3';
import { Amount } from '../core/amount.js';
import { decodeBolt11 } from '../lightning/bolt11.js';
import type { LightningBackend, PaymentOutcome } from '../lightning/lightning-backend.js';
import { invalidRequest, MintError, MintErrorCode } from './errors.js';
import { checkInputs, type VerifiedInput, verifyInputs, yOfSecret } from './inputs.js';
import { KeysetRegistry, type KeysetSettings } from './keyset-registry.js';
import { NodePayments } from './node-payments.js';
import { type CheckedOutput, checkOutputs, imprintChange, signOutputs } from './outputs.js';
import {
  getMeltQuote,
  getMintQuote,
  insertProofs,
  insertSignatureRows,
  insertSignatures,
  isUniqueViolation,
  type MintDb,
  proofStates,
  signatureRows,
  signedOutputs,
} from './store/mint-store.js';
import { SqliteSpendWriter } from './store/sqlite-spend.js';
import type { MintMeltQuotesTable, MintMintQuotesTable, MintProofsTable } from './store/tables.js';
import type {
  BlindedMessage,
  BlindSignature,
  CheckStateResponse,
  KeysetInfo,
  KeysetKeys,
  MeltQuoteRequest,
  MeltQuoteResponse,
  MeltRequest,
  MintQuoteRequest,
  MintQuoteResponse,
  MintRequest,
  Proof,
  RestoreResponse,
  SwapRequest,
  SwapResponse,
} from './types.js';

/** What the mint logs through; pino's Logger fits. */
export interface MintLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface MintLimits {
  /** most inputs per swap or melt (NUT code 11014 beyond) */
  maxInputs: number;
  /** most outputs per swap, mint, melt or restore (11015 beyond) */
  maxOutputs: number;
  /** most Ys per checkstate */
  maxCheckstate: number;
  mintMinAmount: number;
  mintMaxAmount: number;
  meltMinAmount: number;
  meltMaxAmount: number;
  /** life of a mint quote's invoice, seconds */
  mintQuoteTtlSeconds: number;
  /** life of a melt quote, seconds (never past the invoice's own expiry) */
  meltQuoteTtlSeconds: number;
}

export const DEFAULT_MINT_LIMITS: MintLimits = {
  maxInputs: 1000,
  maxOutputs: 1000,
  maxCheckstate: 1000,
  mintMinAmount: 1,
  mintMaxAmount: 100_000_000,
  meltMinAmount: 1,
  meltMaxAmount: 100_000_000,
  mintQuoteTtlSeconds: 3600,
  meltQuoteTtlSeconds: 600,
};

export interface MintInfoOptions {
  name?: string;
  description?: string;
  descriptionLong?: string;
  motd?: string;
  contact?: Array<{ method: string; info: string }>;
  urls?: string[];
  iconUrl?: string;
  version?: string;
}

export interface MintOptions {
  db: MintDb;
  /**
   * The better-sqlite3 connection under `db` (openStore), if the store is SQLite: swaps then commit
   * through prepared statements synchronously. Without it every commit goes through Kysely.
   */
  sqlite?: SQLite.Database;
  lightning: LightningBackend;
  /** master seed (loadOrCreateSeed) */
  seed: Uint8Array;
  /** milliseconds since the epoch */
  clock?: () => number;
  logger?: MintLogger;
  limits?: Partial<MintLimits>;
  /** denominations 2^0..2^(maxOrder-1), default 32; NUT-02 input fee in ppk, default 0 */
  keysets?: Partial<KeysetSettings>;
  /** Lightning fee reserve of external melts: max(min, ceil(amount * ppk / 1000)) */
  feeReserve?: { ppk: number; min: number };
  info?: MintInfoOptions;
  random?: (n: number) => Uint8Array;
}

const UNIT = 'sat';
const METHOD = 'bolt11';
const SILENT: MintLogger = { debug() {}, info() {}, warn() {}, error() {} };
const CACHED_ENDPOINTS = [
  { method: 'POST', path: '/v1/mint/bolt11' },
  { method: 'POST', path: '/v1/swap' },
  { method: 'POST', path: '/v1/melt/bolt11' },
];

/**
 * The embedded Cashu mint (NUT-00..12, 19, 23). Every method is callable in-process with typed
 * input; the HTTP routes (http/routes.ts) only validate shapes and call these.
 *
 * Money rules: every input's Y is the primary key of `mint_proofs`, inserted in the same
 * transaction as the signatures it pays for, after all verification is done; every B_ is the
 * primary key of `mint_signatures`. So two requests spending one proof cannot both commit.
 */
export class Mint {
  readonly limits: MintLimits;
  private readonly db: MintDb;
  private readonly lightning: LightningBackend;
  private readonly clock: () => number;
  private readonly log: MintLogger;
  private readonly keysetSettings: KeysetSettings;
  private readonly feeReserve: { ppk: number; min: number };
  private readonly infoOptions: MintInfoOptions;
  private readonly random: (n: number) => Uint8Array;
  private readonly registry: KeysetRegistry;
  private readonly fastSpend: SqliteSpendWriter | undefined;
  private lastKeysetReload = 0;

  private constructor(options: MintOptions) {
    this.db = options.db;
    this.lightning = options.lightning;
    this.clock = options.clock ?? Date.now;
    this.log = options.logger ?? SILENT;
    this.limits = { ...DEFAULT_MINT_LIMITS, ...options.limits };
    this.keysetSettings = { maxOrder: 32, inputFeePpk: 0, ...options.keysets };
    this.feeReserve = options.feeReserve ?? { ppk: 10, min: 2 };
    this.infoOptions = options.info ?? {};
    this.random = options.random ?? randomBytes;
    this.registry = new KeysetRegistry(this.db, options.seed, () => this.nowSeconds());
    this.fastSpend = options.sqlite === undefined ? undefined : new SqliteSpendWriter(options.sqlite);
  }

  /** Loads (or creates) the keysets and settles melts left PENDING by a previous run. */
  static async create(options: MintOptions): Promise<Mint> {
    const mint = new Mint(options);
    await mint.registry.load([UNIT], mint.keysetSettings);
    await mint.recoverPendingMelts();
    return mint;
  }

  // ---------------------------------------------------------------- NUT-01, NUT-02

  /** NUT-01: the active keysets with their public keys. */
  keys(): { keysets: KeysetKeys[] } {
    return {
      keysets: this.registry
        .all()
        .filter((k) => k.active)
        .map((k) => k.published),
    };
  }

  /** NUT-02: any keyset's public keys. */
  async keysFor(id: string): Promise<{ keysets: KeysetKeys[] }> {
    const keyset = this.registry.get(id) ?? (await this.reloadKeysetsFor(id));
    if (keyset === undefined) throw new MintError(MintErrorCode.keysetUnknown, `keyset ${id} is not known`);
    return { keysets: [keyset.published] };
  }

  /** NUT-02: every keyset, active or not. */
  keysets(): { keysets: KeysetInfo[] } {
    return { keysets: this.registry.all().map((k) => k.info) };
  }

  /**
   * Operator: starts a new active keyset for the unit; the old one stays valid for redemption.
   * Another process serving this store picks it up on its next keyset reload.
   */
  async rotate(unit: string = UNIT, settings: Partial<KeysetSettings> = {}): Promise<string> {
    const id = await this.registry.rotate(unit, { ...this.keysetSettings, ...settings });
    this.log.info({ unit, keyset: id }, 'mint keyset rotated');
    return id;
  }

  /** Re-reads keysets from the store (e.g. after `alacarte mint rotate` in another process). */
  async reloadKeysets(): Promise<void> {
    this.lastKeysetReload = this.clock();
    await this.registry.reload();
  }

  /**
   * Re-reads keysets if the last read is older than `maxAgeMs`: wallets learn of keysets through
   * /v1/keys and /v1/keysets, so a rotation done by another process shows there within seconds.
   */
  async refreshKeysets(maxAgeMs = 5000): Promise<void> {
    if (this.clock() - this.lastKeysetReload < maxAgeMs) return;
    await this.reloadKeysets();
  }

  /** The mint as the node's own lease service uses it, in-process (node-payments.ts). */
  nodePayments(): NodePayments {
    return new NodePayments(this.db, this.registry, this.limits.maxInputs, () => this.nowSeconds());
  }

  // ---------------------------------------------------------------- NUT-06

  info(): Record<string, unknown> {
    const test = this.lightning.isTestBackend;
    const warning =
      'TEST MINT: its Lightning backend is a fake test backend. No real money moves; this ecash is worth nothing.';
    const o = this.infoOptions;
    const limits = this.limits;
    const info: Record<string, unknown> = {
      name: o.name ?? 'alacarte mint',
      version: o.version ?? 'alacarte/0.1.0',
      description: test
        ? `${warning} ${o.description ?? ''}`.trim()
        : (o.description ?? 'alacarte node mint'),
      contact: o.contact ?? [],
      time: this.nowSeconds(),
      nuts: {
        '4': {
          methods: [
            {
              method: METHOD,
              unit: UNIT,
              min_amount: limits.mintMinAmount,
              max_amount: limits.mintMaxAmount,
              options: { description: true },
            },
          ],
          disabled: false,
        },
        '5': {
          methods: [
            {
              method: METHOD,
              unit: UNIT,
              min_amount: limits.meltMinAmount,
              max_amount: limits.meltMaxAmount,
            },
          ],
          disabled: false,
        },
        '7': { supported: true },
        '8': { supported: true },
        '9': { supported: true },
        '10': { supported: true },
        '11': { supported: true },
        '12': { supported: true },
        // HTLC secrets are enforced by the same conditions check as P2PK (conditions/).
        '14': { supported: true },
        // Answers are derived from the ledger itself, so they never expire.
        '19': { ttl: null, cached_endpoints: CACHED_ENDPOINTS },
      },
    };
    if (o.descriptionLong !== undefined) info.description_long = o.descriptionLong;
    if (test || o.motd !== undefined) info.motd = test ? `${warning}${o.motd ? ` ${o.motd}` : ''}` : o.motd;
    if (o.urls !== undefined) info.urls = o.urls;
    if (o.iconUrl !== undefined) info.icon_url = o.iconUrl;
    return info;
  }

  // ---------------------------------------------------------------- NUT-03

  /**
   * NUT-03 swap. A retry of a swap that committed (NUT-19) gets the same signatures again: they
   * are read back from the ledger (every B_ is kept, as NUT-09 restore needs anyway).
   */
  async swap(request: SwapRequest): Promise<SwapResponse> {
    const inputs = checkInputs(this.registry, request.inputs, this.limits.maxInputs);
    const outputs = checkOutputs(this.registry, request.outputs, {
      maxOutputs: this.limits.maxOutputs,
      unit: inputs.unit,
    });
    if (inputs.total - inputs.fee !== outputs.total) {
      throw new MintError(
        MintErrorCode.unbalanced,
        `inputs (${inputs.total}) - fee (${inputs.fee}) != outputs (${outputs.total})`,
      );
    }
    const verified = verifyInputs(inputs.inputs, { outputs: request.outputs, now: this.nowSeconds() });
    const signatures = signOutputs(outputs.outputs);
    const response: SwapResponse = { signatures };
    const now = this.nowSeconds();
    try {
      const proofs = this.proofRows(verified, 'SPENT', null, now);
      const signed = signatureRows(
        signatures,
        outputs.outputs.map((o) => o.B_),
        now,
      );
      // The inputs' Ys and the outputs' B_s, in one transaction: the spend happens once or not at all.
      if (this.fastSpend !== undefined) {
        await this.fastSpend.commit(proofs, signed);
      } else {
        await this.db.transaction().execute(async (trx) => {
          await insertProofs(trx, proofs);
          await insertSignatureRows(trx, signed);
        });
      }
    } catch (err) {
      const replay = isUniqueViolation(err) ? await this.replaySwap(verified, outputs.outputs) : undefined;
      if (replay !== undefined) return replay;
      throw await this.explainConflict(err, verified, outputs.outputs);
    }
    return response;
  }

  // ---------------------------------------------------------------- NUT-04, NUT-23 (mint)

  async createMintQuote(request: MintQuoteRequest): Promise<MintQuoteResponse> {
    this.requireUnit(request.unit);
    const amount = request.amount;
    if (
      !Number.isSafeInteger(amount) ||
      amount < this.limits.mintMinAmount ||
      amount > this.limits.mintMaxAmount
    ) {
      throw new MintError(
        MintErrorCode.amountOutOfRange,
        `amount must be within ${this.limits.mintMinAmount}..${this.limits.mintMaxAmount} ${UNIT}`,
      );
    }
    const description = request.description ?? 'alacarte mint';
    // BOLT11 counts the description in bytes, not characters.
    if (Buffer.byteLength(description, 'utf8') > 639)
      throw invalidRequest('description longer than 639 bytes');
    const invoice = await this.lightning.createInvoice(Amount.of(amount, UNIT), description);
    const now = this.nowSeconds();
    const row: MintMintQuotesTable = {
      id: this.quoteId(),
      method: METHOD,
      unit: UNIT,
      amount,
      request: invoice.bolt11,
      payment_hash: invoice.paymentHash,
      state: 'UNPAID',
      expiry: Math.floor(invoice.expiresAt.getTime() / 1000),
      created_at: now,
      paid_at: null,
      issued_at: null,
      paid_by_melt_quote_id: null,
    };
    await this.db.insertInto('mint_mint_quotes').values(row).execute();
    return mintQuoteResponse(row);
  }

  /** NUT-04 quote state; an UNPAID quote asks the Lightning backend whether its invoice got paid. */
  async getMintQuote(id: string): Promise<MintQuoteResponse> {
    return mintQuoteResponse(await this.refreshMintQuote(id));
  }

  /** NUT-04 mint. A retry of a mint that committed (NUT-19) gets the same signatures again. */
  async mint(request: MintRequest): Promise<SwapResponse> {
    const quote = await this.refreshMintQuote(request.quote);
    if (quote.state === 'ISSUED') {
      const replay = await this.replayOutputs(request.outputs);
      if (replay !== undefined) return replay;
      throw new MintError(MintErrorCode.quoteIssued, 'quote has already been issued');
    }
    if (quote.state === 'UNPAID') {
      if (Number(quote.expiry) < this.nowSeconds())
        throw new MintError(MintErrorCode.quoteExpired, 'quote is expired');
      throw new MintError(MintErrorCode.quoteNotPaid, 'quote is not paid');
    }
    const outputs = checkOutputs(this.registry, request.outputs, {
      maxOutputs: this.limits.maxOutputs,
      unit: quote.unit,
    });
    if (outputs.total !== BigInt(quote.amount)) {
      throw new MintError(
        MintErrorCode.unbalanced,
        `outputs (${outputs.total}) must add up to the quote's amount (${quote.amount})`,
      );
    }
    const signatures = signOutputs(outputs.outputs);
    const response: SwapResponse = { signatures };
    const now = this.nowSeconds();
    try {
      await this.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('mint_mint_quotes')
          .set({ state: 'ISSUED', issued_at: now })
          .where('id', '=', quote.id)
          .where('state', '=', 'PAID')
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1) {
          throw new MintError(MintErrorCode.quoteIssued, 'quote has already been issued');
        }
        await insertSignatures(
          trx,
          signatures,
          outputs.outputs.map((o) => o.B_),
          now,
        );
      });
    } catch (err) {
      const replay = await this.replayOutputs(request.outputs);
      if (replay !== undefined) return replay;
      throw await this.explainConflict(err, [], outputs.outputs);
    }
    return response;
  }

  // ---------------------------------------------------------------- NUT-05, NUT-08, NUT-23 (melt)

  async createMeltQuote(request: MeltQuoteRequest & { options?: unknown }): Promise<MeltQuoteResponse> {
    this.requireUnit(request.unit);
    const invoice = decodeBolt11(request.request);
    if (invoice === undefined) throw invalidRequest('request is not a valid BOLT11 invoice');
    if (invoice.amountMsat === undefined || invoice.amountMsat === 0n) {
      throw new MintError(MintErrorCode.amountlessInvoice, 'amountless invoices are not supported');
    }
    const now = this.nowSeconds();
    const invoiceExpiry = Math.floor(invoice.expiresAt.getTime() / 1000);
    if (invoiceExpiry <= now) throw invalidRequest('invoice has expired');
    const amountBig = (invoice.amountMsat + 999n) / 1000n;
    if (amountBig < BigInt(this.limits.meltMinAmount) || amountBig > BigInt(this.limits.meltMaxAmount)) {
      throw new MintError(
        MintErrorCode.amountOutOfRange,
        `amount must be within ${this.limits.meltMinAmount}..${this.limits.meltMaxAmount} ${UNIT}`,
      );
    }
    const amount = Number(amountBig);
    const own = await this.db
      .selectFrom('mint_mint_quotes')
      .select(['id', 'state', 'unit'])
      .where('payment_hash', '=', invoice.paymentHash)
      .executeTakeFirst();
    if (own !== undefined && (await this.refreshMintQuote(own.id)).state !== 'UNPAID') {
      throw new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
    }
    const feeReserve =
      own !== undefined ? 0 : Math.max(this.feeReserve.min, Math.ceil((amount * this.feeReserve.ppk) / 1000));
    const row: MintMeltQuotesTable = {
      id: this.quoteId(),
      method: METHOD,
      unit: UNIT,
      request: request.request,
      payment_hash: invoice.paymentHash,
      amount,
      fee_reserve: feeReserve,
      state: 'UNPAID',
      expiry: Math.min(invoiceExpiry, now + this.limits.meltQuoteTtlSeconds),
      created_at: now,
      paid_at: null,
      payment_preimage: null,
      fee_paid: null,
      internal_mint_quote_id: own?.id ?? null,
      pending_inputs_net: null,
      pending_outputs: null,
    };
    await this.db.insertInto('mint_melt_quotes').values(row).execute();
    return meltQuoteResponse(row, []);
  }

  /** NUT-05 quote state; a PENDING quote asks the Lightning backend how its payment went. */
  async getMeltQuote(id: string): Promise<MeltQuoteResponse> {
    let quote = await getMeltQuote(this.db, id);
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
    const quote = await getMeltQuote(this.db, request.quote);
    if (quote === undefined) throw invalidRequest('unknown quote', 404);
    if (quote.state === 'PENDING') throw new MintError(MintErrorCode.quotePending, 'quote is pending');
    if (quote.state === 'PAID') {
      if (await this.paidBy(quote.id, request.inputs)) return this.meltResponse(quote);
      throw new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
    }
    const now = this.nowSeconds();
    if (Number(quote.expiry) < now) throw new MintError(MintErrorCode.quoteExpired, 'quote is expired');

    const inputs = checkInputs(this.registry, request.inputs, this.limits.maxInputs);
    if (inputs.unit !== quote.unit) {
      throw new MintError(MintErrorCode.unitMismatch, `inputs must be in ${quote.unit}`);
    }
    const blanks = checkOutputs(this.registry, request.outputs ?? [], {
      maxOutputs: this.limits.maxOutputs,
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
      this.db,
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
      await this.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('mint_melt_quotes')
          .set({ state: 'PENDING', pending_inputs_net: Number(net), pending_outputs: pendingOutputs })
          .where('id', '=', quote.id)
          .where('state', '=', 'UNPAID')
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1)
          throw new MintError(MintErrorCode.quotePending, 'quote is pending');
        await insertProofs(trx, this.proofRows(verified, 'PENDING', quote.id, now));
      });
    } catch (err) {
      if (isUniqueViolation(err)) {
        const states = await proofStates(
          this.db,
          verified.map((v) => v.Y),
        );
        if (states.size === 0) {
          // The partial index on payment_hash: another quote for this invoice is being paid or was paid.
          throw new MintError(MintErrorCode.quotePending, 'a payment of this invoice is pending or done');
        }
      }
      throw await this.explainConflict(err, verified, []);
    }
    const pending: MintMeltQuotesTable = {
      ...quote,
      state: 'PENDING',
      pending_inputs_net: Number(net),
      pending_outputs: pendingOutputs,
    };
    let outcome: PaymentOutcome;
    try {
      outcome = await this.lightning.payInvoice(quote.request, Amount.of(quote.fee_reserve, quote.unit));
    } catch (err) {
      this.log.warn({ err, quote: quote.id }, 'melt: payInvoice threw; asking for the payment state');
      outcome = await this.askPayment(quote);
    }
    const finished = await this.finishMelt(pending, outcome);
    if (finished.state === 'UNPAID') {
      const reason = outcome.state === 'failed' ? outcome.reason : 'payment failed';
      throw new MintError(MintErrorCode.lightningPaymentFailed, `Lightning payment failed: ${reason}`);
    }
    return this.meltResponse(finished);
  }

  // ---------------------------------------------------------------- NUT-07, NUT-09

  async checkState(Ys: readonly string[]): Promise<CheckStateResponse> {
    if (Ys.length > this.limits.maxCheckstate) {
      throw invalidRequest(`at most ${this.limits.maxCheckstate} Ys per request`);
    }
    const lower = Ys.map((y) => y.toLowerCase());
    const states = await proofStates(this.db, [...new Set(lower)]);
    return {
      states: lower.map((Y) => {
        const s = states.get(Y);
        return { Y, state: s?.state ?? 'UNSPENT', witness: s?.witness ?? null };
      }),
    };
  }

  async restore(outputs: readonly BlindedMessage[]): Promise<RestoreResponse> {
    if (outputs.length > this.limits.maxOutputs) {
      throw new MintError(
        MintErrorCode.maxOutputsExceeded,
        `at most ${this.limits.maxOutputs} outputs per request`,
      );
    }
    const B_s = outputs.map((o) => o.B_.toLowerCase());
    const found = await signedOutputs(this.db, [...new Set(B_s)]);
    const response: RestoreResponse = { outputs: [], signatures: [] };
    for (const B_ of B_s) {
      const signature = found.get(B_);
      if (signature === undefined) continue;
      response.outputs.push({ amount: signature.amount, id: signature.id, B_ });
      response.signatures.push(signature);
    }
    return response;
  }

  // ---------------------------------------------------------------- internals

  private async meltInternally(
    quote: MintMeltQuotesTable,
    mintQuoteId: string,
    verified: VerifiedInput[],
    blanks: CheckedOutput[],
    net: bigint,
  ): Promise<MeltQuoteResponse> {
    const mintQuote = await getMintQuote(this.db, mintQuoteId);
    if (mintQuote === undefined || mintQuote.state !== 'UNPAID') {
      throw new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
    }
    // Someone may have paid the invoice over Lightning meanwhile: then it is not ours to settle.
    const state = await this.lightning.invoiceState(mintQuote.payment_hash).catch((err: unknown) => {
      this.log.warn({ err, quote: quote.id }, 'melt: invoice state unknown');
      throw new MintError(MintErrorCode.lightningPaymentFailed, 'invoice state unknown, try again');
    });
    if (state === 'paid') {
      await this.markMintQuotePaid(mintQuote.id);
      throw new MintError(MintErrorCode.invoiceAlreadyPaid, 'invoice already paid');
    }
    const changeOutputs = imprintChange(blanks, net - BigInt(quote.amount));
    const change = signOutputs(changeOutputs);
    const now = this.nowSeconds();
    const settled: MintMeltQuotesTable = { ...quote, state: 'PAID', paid_at: now, fee_paid: 0 };
    const response = meltQuoteResponse(settled, change);
    try {
      await this.db.transaction().execute(async (trx) => {
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
        await insertProofs(trx, this.proofRows(verified, 'SPENT', quote.id, now));
        await insertSignatures(
          trx,
          change,
          changeOutputs.map((o) => o.B_),
          now,
          quote.id,
        );
      });
    } catch (err) {
      throw await this.explainConflict(err, verified, changeOutputs);
    }
    this.log.info(
      { quote: quote.id, mintQuote: mintQuoteId, amount: quote.amount },
      'melt settled internally',
    );
    return response;
  }

  /** Settles (paid), releases (failed) or keeps (pending) a PENDING external melt. */
  private async finishMelt(
    quote: MintMeltQuotesTable,
    outcome: PaymentOutcome,
  ): Promise<MintMeltQuotesTable> {
    const now = this.nowSeconds();
    if (outcome.state === 'pending') return quote;
    if (outcome.state === 'failed') {
      await this.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('mint_melt_quotes')
          .set({ state: 'UNPAID', pending_inputs_net: null, pending_outputs: null })
          .where('id', '=', quote.id)
          .where('state', '=', 'PENDING')
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1) return;
        await trx
          .deleteFrom('mint_proofs')
          .where('melt_quote_id', '=', quote.id)
          .where('state', '=', 'PENDING')
          .execute();
      });
      this.log.warn({ quote: quote.id, reason: outcome.reason }, 'melt payment failed; inputs released');
      return (await getMeltQuote(this.db, quote.id)) ?? quote;
    }
    const feePaid = outcome.feePaid.value;
    let changeOutputs: CheckedOutput[] = [];
    if (quote.pending_outputs !== null && quote.pending_inputs_net !== null) {
      const overpaid = BigInt(quote.pending_inputs_net) - BigInt(quote.amount) - feePaid;
      if (overpaid < 0n)
        this.log.error({ quote: quote.id, feePaid: String(feePaid) }, 'melt fee exceeded reserve');
      const blanks = JSON.parse(quote.pending_outputs) as BlindedMessage[];
      try {
        const checked = checkOutputs(this.registry, blanks, {
          maxOutputs: this.limits.maxOutputs,
          unit: quote.unit,
          blank: true,
        });
        changeOutputs = imprintChange(checked.outputs, overpaid);
      } catch (err) {
        // A keyset deactivated while the payment was in flight: the change cannot be signed.
        this.log.warn({ err, quote: quote.id }, 'melt change outputs no longer valid');
      }
    }
    const change = signOutputs(changeOutputs);
    const settle = async (withChange: boolean) => {
      let response: MeltQuoteResponse | undefined;
      await this.db.transaction().execute(async (trx) => {
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
      this.log.warn(
        { quote: quote.id },
        'melt change outputs were signed meanwhile; settling without change',
      );
      await settle(false);
    }
    this.log.info({ quote: quote.id, amount: quote.amount, feePaid: String(feePaid) }, 'melt paid');
    return (await getMeltQuote(this.db, quote.id)) ?? quote;
  }

  private async askPayment(quote: MintMeltQuotesTable): Promise<PaymentOutcome> {
    try {
      return await this.lightning.paymentState(quote.payment_hash);
    } catch (err) {
      this.log.warn({ err, quote: quote.id }, 'melt: payment state unknown; keeping it pending');
      return { state: 'pending' };
    }
  }

  /** At start: every melt a previous run left PENDING is settled or released as Lightning says. */
  async recoverPendingMelts(): Promise<void> {
    const pending = await this.db
      .selectFrom('mint_melt_quotes')
      .selectAll()
      .where('state', '=', 'PENDING')
      .execute();
    for (const quote of pending) {
      await this.finishMelt(quote, await this.askPayment(quote));
    }
  }

  private async meltResponse(quote: MintMeltQuotesTable): Promise<MeltQuoteResponse> {
    if (quote.state !== 'PAID') return meltQuoteResponse(quote, []);
    const rows = await this.db
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

  private async refreshMintQuote(id: string): Promise<MintMintQuotesTable> {
    const quote = await getMintQuote(this.db, id);
    if (quote === undefined) throw invalidRequest('unknown quote', 404);
    if (quote.state !== 'UNPAID') return quote;
    let state: string;
    try {
      state = await this.lightning.invoiceState(quote.payment_hash);
    } catch (err) {
      // Lightning unreachable: the quote simply stays UNPAID for now.
      this.log.warn({ err, quote: id }, 'mint quote: invoice state unknown');
      return quote;
    }
    if (state !== 'paid') return quote;
    await this.markMintQuotePaid(quote.id);
    return (await getMintQuote(this.db, id)) ?? quote;
  }

  private async markMintQuotePaid(id: string): Promise<void> {
    await this.db
      .updateTable('mint_mint_quotes')
      .set({ state: 'PAID', paid_at: this.nowSeconds() })
      .where('id', '=', id)
      .where('state', '=', 'UNPAID')
      .execute();
  }

  /** Turns a failed spend transaction into the NUT error the wallet should see. */
  private async explainConflict(
    err: unknown,
    verified: readonly VerifiedInput[],
    outputs: readonly CheckedOutput[],
  ): Promise<unknown> {
    if (!isUniqueViolation(err)) return err;
    const states = await proofStates(
      this.db,
      verified.map((v) => v.Y),
    );
    const values = [...states.values()];
    if (values.some((s) => s.state === 'PENDING')) {
      return new MintError(MintErrorCode.proofsPending, 'proofs are pending');
    }
    if (values.length > 0) return new MintError(MintErrorCode.proofsSpent, 'proofs already spent');
    const signed = await signedOutputs(
      this.db,
      outputs.map((o) => o.B_),
    );
    if (signed.size > 0) {
      return new MintError(MintErrorCode.outputsAlreadySigned, 'outputs have already been signed');
    }
    // Another unique key: a concurrent melt of the same invoice (one payment per payment hash).
    // The transaction rolled back, nothing moved.
    return new MintError(
      MintErrorCode.quotePending,
      'a conflicting payment of this invoice is pending or done',
    );
  }

  /**
   * NUT-19 for swaps: the retry of a swap that committed finds all its inputs SPENT and all its
   * outputs signed, and gets those signatures again. (Whoever knows the B_s may read their
   * signatures through NUT-09 restore anyway, so this reveals nothing new.)
   */
  private async replaySwap(
    verified: readonly VerifiedInput[],
    outputs: readonly CheckedOutput[],
  ): Promise<SwapResponse | undefined> {
    const states = await proofStates(
      this.db,
      verified.map((v) => v.Y),
    );
    if (states.size !== verified.length || [...states.values()].some((s) => s.state !== 'SPENT'))
      return undefined;
    return this.replayOutputs(outputs);
  }

  /** The stored signatures of these outputs, in their order, if every one of them was signed. */
  private async replayOutputs(outputs: readonly { B_: string }[]): Promise<SwapResponse | undefined> {
    if (outputs.length === 0) return undefined;
    const B_s = outputs.map((o) => o.B_.toLowerCase());
    const signed = await signedOutputs(this.db, B_s);
    const signatures: BlindSignature[] = [];
    for (const B_ of B_s) {
      const signature = signed.get(B_);
      if (signature === undefined) return undefined;
      signatures.push(signature);
    }
    return { signatures };
  }

  /** True when every one of these inputs was spent by this melt quote. */
  private async paidBy(quoteId: string, inputs: readonly Proof[]): Promise<boolean> {
    if (inputs.length === 0 || inputs.length > this.limits.maxInputs) return false;
    const ys = inputs.map((p) => yOfSecret(p.secret));
    const rows = await this.db
      .selectFrom('mint_proofs')
      .select(['y', 'state', 'melt_quote_id'])
      .where('y', 'in', [...new Set(ys)])
      .execute();
    const byY = new Map(rows.map((r) => [r.y, r]));
    return ys.every((y) => byY.get(y)?.state === 'SPENT' && byY.get(y)?.melt_quote_id === quoteId);
  }

  private async reloadKeysetsFor(id: string) {
    // Bounded: an unknown id from the outside triggers at most one reload per second.
    await this.refreshKeysets(1000);
    return this.registry.get(id);
  }

  private proofRows(
    verified: readonly VerifiedInput[],
    state: MintProofsTable['state'],
    meltQuoteId: string | null,
    now: number,
  ): MintProofsTable[] {
    return verified.map((v) => ({
      y: v.Y,
      keyset_id: v.keysetId,
      amount: v.proof.amount,
      secret: v.proof.secret,
      c: v.proof.C,
      witness: v.witness,
      state,
      melt_quote_id: meltQuoteId,
      created_at: now,
    }));
  }

  private requireUnit(unit: string): void {
    if (unit !== UNIT) throw new MintError(MintErrorCode.unitUnsupported, `unit ${unit} is not supported`);
  }

  /** UUID v7 (NUT-04/05): 48 bits of milliseconds, then 74 random bits from the CSPRNG. */
  private quoteId(): string {
    const b = Buffer.from(this.random(16));
    const ms = this.clock();
    b.writeUIntBE(Math.floor(ms), 0, 6);
    b[6] = (b[6]! & 0x0f) | 0x70;
    b[8] = (b[8]! & 0x3f) | 0x80;
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  private nowSeconds(): number {
    return Math.floor(this.clock() / 1000);
  }
}

function mintQuoteResponse(row: MintMintQuotesTable): MintQuoteResponse {
  return {
    quote: row.id,
    request: row.request,
    amount: Number(row.amount),
    unit: row.unit,
    state: row.state,
    expiry: Number(row.expiry),
  };
}

function meltQuoteResponse(row: MintMeltQuotesTable, change: BlindSignature[]): MeltQuoteResponse {
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
