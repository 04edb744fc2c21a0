import { randomBytes } from 'node:crypto';
import type SQLite from 'better-sqlite3';
import type pg from 'pg';
import { Amount } from '../core/amount.js';
import type { LightningBackend } from '../lightning/lightning-backend.js';
import type { Transact } from '../store/group-commit.js';
import { CurvePool, type CurvePoolOptions } from './curve-pool.js';
import { invalidRequest, MintError, MintErrorCode } from './errors.js';
import { MintEvents } from './events.js';
import { checkInputs, type VerifiedInput } from './inputs.js';
import { KeysetRegistry, type KeysetSettings } from './keyset-registry.js';
import {
  DEFAULT_MINT_LIMITS,
  METHOD,
  MintCore,
  type MintLimits,
  type MintLogger,
  UNIT,
} from './mint-core.js';
import { NodePayments } from './node-payments.js';
import { MeltService } from './nut-05-melt.js';
import { requireMintSignature, requireQuotePubkey } from './nut-20.js';
import { type CheckedOutput, checkOutputs } from './outputs.js';
import { requirePoint } from './points.js';
import {
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
import { PostgresSpendWriter, type SpendWriter } from './store/postgres-spend.js';
import { sqliteSpendWriter } from './store/sqlite-spend.js';
import type { MintMintQuotesTable, MintTables } from './store/tables.js';
import { verifyAndSign } from './swap-curve.js';
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
  RestoreResponse,
  SwapRequest,
  SwapResponse,
} from './types.js';

export { DEFAULT_MINT_LIMITS, type MintLimits, type MintLogger };

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
   * through prepared statements, grouped, in a worker thread with its own connection when the store
   * is a file (sqlite-spend.ts, sqlite-spend-worker.ts). Without it every commit goes through Kysely.
   */
  sqlite?: SQLite.Database;
  /**
   * The `pg` pool under `db` (openStore), if the store is PostgreSQL: swaps then commit in one
   * statement (postgres-spend.ts). Without either every commit goes through Kysely.
   */
  postgres?: pg.Pool;
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
  /** Called after rotate() made a new keyset, e.g. to tell other replicas (replica-events.ts). */
  onRotated?: (keysetId: string) => void;
  /**
   * Worker threads for the per-proof curve work of swaps and mints (curve-pool.ts: verifying
   * inputs, signing outputs with their DLEQ), so that it does not hold the event loop. Default:
   * the machine's cores − 1 threads, at least 1, and at most 8000 proofs waiting (beyond: 503).
   * `threads: 0` does all of it on the event loop.
   */
  curve?: Omit<CurvePoolOptions, 'logger'>;
}

/** NUT-17 subscription kinds this mint notifies about. */
export const NUT17_COMMANDS = ['bolt11_mint_quote', 'bolt11_melt_quote', 'proof_state'] as const;

const SILENT: MintLogger = { debug() {}, info() {}, warn() {}, error() {} };
const CACHED_ENDPOINTS = [
  { method: 'POST', path: '/v1/mint/bolt11' },
  { method: 'POST', path: '/v1/swap' },
  { method: 'POST', path: '/v1/melt/bolt11' },
];

/**
 * The embedded Cashu mint (NUT-00..12, 14, 17, 19, 20, 23). Every method is callable in-process with typed
 * input; the HTTP routes (http/routes.ts) only validate shapes and call these. Melting lives in
 * nut-05-melt.ts, what the handlers share in mint-core.ts.
 *
 * Money rules: every input's Y is the primary key of `mint_proofs`, inserted in the same
 * transaction as the signatures it pays for, after all verification is done; every B_ is the
 * primary key of `mint_signatures`. So two requests spending one proof cannot both commit.
 */
export class Mint {
  readonly limits: MintLimits;
  private readonly core: MintCore;
  private readonly melts: MeltService;
  private readonly keysetSettings: KeysetSettings;
  private readonly infoOptions: MintInfoOptions;
  private readonly fastSpend: SpendWriter | undefined;
  private readonly curvePool: CurvePool | undefined;
  private lastKeysetReload = 0;
  private readonly onRotated: (keysetId: string) => void;
  private stopSettlements: (() => void) | undefined;
  /** Committed state changes of quotes and proofs (NUT-17 subscriptions listen here). */
  readonly events: MintEvents;

  private constructor(options: MintOptions) {
    const clock = options.clock ?? Date.now;
    this.limits = { ...DEFAULT_MINT_LIMITS, ...options.limits };
    const registry = new KeysetRegistry(options.db, options.seed, () => Math.floor(clock() / 1000));
    const log = options.logger ?? SILENT;
    this.events = new MintEvents(log);
    this.core = new MintCore(
      options.db,
      options.lightning,
      registry,
      this.limits,
      log,
      clock,
      options.random ?? randomBytes,
      this.events,
    );
    this.melts = new MeltService(this.core, options.feeReserve ?? { ppk: 10, min: 2 });
    this.keysetSettings = { maxOrder: 32, inputFeePpk: 0, ...options.keysets };
    this.infoOptions = options.info ?? {};
    this.onRotated = options.onRotated ?? (() => {});
    this.curvePool =
      options.curve?.threads === 0 ? undefined : new CurvePool({ ...options.curve, logger: log });
    this.fastSpend =
      options.sqlite !== undefined
        ? sqliteSpendWriter(options.db, options.sqlite)
        : options.postgres !== undefined
          ? new PostgresSpendWriter(options.postgres)
          : undefined;
  }

  /**
   * Loads (or creates) the keysets, settles melts left PENDING by a previous run, and listens to
   * the Lightning backend's incoming payments (close() stops listening).
   */
  static async create(options: MintOptions): Promise<Mint> {
    const mint = new Mint(options);
    await mint.core.registry.load([UNIT], mint.keysetSettings);
    await mint.melts.recoverPendingMelts();
    mint.stopSettlements = mint.core.lightning.onSettlement((paymentHash) => {
      mint.core.settleIncoming(paymentHash).catch((err: unknown) => {
        mint.core.log.warn({ err }, 'mint: an incoming payment could not be booked yet');
      });
    });
    return mint;
  }

  /**
   * Stops listening to the Lightning backend and following pending melts, and resolves once the
   * spend writer has committed the swaps under way and the curve threads have ended (each within
   * its own bound; a failure is logged, never thrown). The store is the caller's to close, after this.
   */
  async close(): Promise<void> {
    this.stopSettlements?.();
    this.stopSettlements = undefined;
    this.melts.close();
    await Promise.all([
      this.fastSpend?.close?.().catch((err: unknown) => {
        this.core.log.warn({ err }, 'mint: the spend writer did not close cleanly');
      }),
      this.curvePool?.close().catch((err: unknown) => {
        this.core.log.warn({ err }, 'mint: the curve workers did not close cleanly');
      }),
    ]);
  }

  // ---------------------------------------------------------------- NUT-01, NUT-02

  /** NUT-01: the active keysets with their public keys. */
  keys(): { keysets: KeysetKeys[] } {
    return {
      keysets: this.core.registry
        .all()
        .filter((k) => k.active)
        .map((k) => k.published),
    };
  }

  /** NUT-02: any keyset's public keys. */
  async keysFor(id: string): Promise<{ keysets: KeysetKeys[] }> {
    const keyset = this.core.registry.get(id) ?? (await this.reloadKeysetsFor(id));
    if (keyset === undefined) throw new MintError(MintErrorCode.keysetUnknown, `keyset ${id} is not known`);
    return { keysets: [keyset.published] };
  }

  /** NUT-02: every keyset, active or not. */
  keysets(): { keysets: KeysetInfo[] } {
    return { keysets: this.core.registry.all().map((k) => k.info) };
  }

  /**
   * Operator: starts a new active keyset for the unit; the old one stays valid for redemption.
   * Another process serving this store picks it up on its next keyset reload.
   */
  async rotate(unit: string = UNIT, settings: Partial<KeysetSettings> = {}): Promise<string> {
    const id = await this.core.registry.rotate(unit, { ...this.keysetSettings, ...settings });
    this.core.log.info({ unit, keyset: id }, 'mint keyset rotated');
    this.onRotated(id);
    return id;
  }

  /** Re-reads keysets from the store (e.g. after `alacarte mint rotate` in another process). */
  async reloadKeysets(): Promise<void> {
    this.lastKeysetReload = this.core.clock();
    await this.core.registry.reload();
  }

  /**
   * Re-reads keysets if the last read is older than `maxAgeMs`: wallets learn of keysets through
   * /v1/keys and /v1/keysets, so a rotation done by another process shows there within seconds.
   */
  async refreshKeysets(maxAgeMs = 5000): Promise<void> {
    if (this.core.clock() - this.lastKeysetReload < maxAgeMs) return;
    await this.reloadKeysets();
  }

  /**
   * The mint as the node's own lease service uses it, in-process (node-payments.ts); `transact`
   * runs its payments' transactions (the node's group commit), by default one transaction each.
   */
  nodePayments(transact?: Transact<MintTables>): NodePayments {
    return new NodePayments(
      this.core.db,
      this.core.registry,
      this.core.limits.maxInputs,
      () => this.core.nowSeconds(),
      this.events,
      transact,
      this.curvePool,
    );
  }

  // ---------------------------------------------------------------- NUT-06

  info(): Record<string, unknown> {
    const test = this.core.lightning.isTestBackend;
    const backend = this.core.lightning.id;
    const warning = `TEST MINT: its Lightning backend '${backend}' is a test backend. No real money moves; this ecash is worth nothing.`;
    const o = this.infoOptions;
    const limits = this.core.limits;
    const info: Record<string, unknown> = {
      name: o.name ?? 'alacarte mint',
      version: o.version ?? 'alacarte/0.1.0',
      description: test
        ? `${warning} ${o.description ?? ''}`.trim()
        : `${o.description ?? 'alacarte node mint'} (Lightning: ${backend})`,
      contact: o.contact ?? [],
      time: this.core.nowSeconds(),
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
        // WebSocket subscriptions at /v1/ws (http/nut-17-ws.ts).
        '17': { supported: [{ method: METHOD, unit: UNIT, commands: [...NUT17_COMMANDS] }] },
        '20': { supported: true },
      },
    };
    // Not a NUT field (wallets ignore unknown ones): lets this node's page and CLI warn their user
    // plainly while the Lightning backend is a test one, instead of parsing the motd.
    info.lightning = { backend: this.core.lightning.id, test: test };
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
    const inputs = checkInputs(this.core.registry, request.inputs, this.core.limits.maxInputs);
    const outputs = checkOutputs(this.core.registry, request.outputs, {
      maxOutputs: this.core.limits.maxOutputs,
      unit: inputs.unit,
    });
    if (inputs.total - inputs.fee !== outputs.total) {
      throw new MintError(
        MintErrorCode.unbalanced,
        `inputs (${inputs.total}) - fee (${inputs.fee}) != outputs (${outputs.total})`,
      );
    }
    // Off the event loop (curve-pool.ts); nothing is stored or answered before the commit below.
    const { verified, signatures } = await verifyAndSign(this.curvePool, inputs.inputs, outputs.outputs, {
      outputs: request.outputs,
      now: this.core.nowSeconds(),
    });
    const response: SwapResponse = { signatures };
    const now = this.core.nowSeconds();
    try {
      const proofs = this.core.proofRows(verified, 'SPENT', null, now);
      const signed = signatureRows(
        signatures,
        outputs.outputs.map((o) => o.B_),
        now,
      );
      // The inputs' Ys and the outputs' B_s, in one transaction: the spend happens once or not at all.
      if (this.fastSpend !== undefined) {
        await this.fastSpend.commit(proofs, signed);
      } else {
        await this.core.db.transaction().execute(async (trx) => {
          await insertProofs(trx, proofs);
          await insertSignatureRows(trx, signed);
        });
      }
    } catch (err) {
      const replay = isUniqueViolation(err) ? await this.replaySwap(verified, outputs.outputs) : undefined;
      if (replay !== undefined) return replay;
      throw await this.core.explainConflict(err, verified, outputs.outputs);
    }
    this.core.proofsChanged(verified, 'SPENT');
    return response;
  }

  // ---------------------------------------------------------------- NUT-04, NUT-23 (mint)

  async createMintQuote(request: MintQuoteRequest): Promise<MintQuoteResponse> {
    this.core.requireUnit(request.unit);
    const amount = request.amount;
    if (
      !Number.isSafeInteger(amount) ||
      amount < this.core.limits.mintMinAmount ||
      amount > this.core.limits.mintMaxAmount
    ) {
      throw new MintError(
        MintErrorCode.amountOutOfRange,
        `amount must be within ${this.core.limits.mintMinAmount}..${this.core.limits.mintMaxAmount} ${UNIT}`,
      );
    }
    const description = request.description ?? 'alacarte mint';
    // BOLT11 counts the description in bytes, not characters.
    if (Buffer.byteLength(description, 'utf8') > 639)
      throw invalidRequest('description longer than 639 bytes');
    const pubkey =
      request.pubkey === undefined || request.pubkey === null ? null : requireQuotePubkey(request.pubkey);
    const invoice = await this.core.lightning.createInvoice(Amount.of(amount, UNIT), description);
    const now = this.core.nowSeconds();
    const row: MintMintQuotesTable = {
      id: this.core.quoteId(),
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
      pubkey,
    };
    await this.core.db.insertInto('mint_mint_quotes').values(row).execute();
    return mintQuoteResponse(row);
  }

  /** NUT-04 quote state; an UNPAID quote asks the Lightning backend whether its invoice got paid. */
  async getMintQuote(id: string): Promise<MintQuoteResponse> {
    return mintQuoteResponse(await this.core.refreshMintQuote(id));
  }

  /** A mint quote's state as stored, without asking Lightning; undefined when unknown. */
  async storedMintQuote(id: string): Promise<MintQuoteResponse | undefined> {
    const row = await getMintQuote(this.core.db, id);
    return row === undefined ? undefined : mintQuoteResponse(row);
  }

  /**
   * NUT-04 mint. A retry of a mint that committed (NUT-19) gets the same signatures again. A quote
   * locked to a key (NUT-20) needs the key's signature over the quote id and these outputs (20008),
   * checked first, so that nothing about the quote is told to whoever lacks the key. A signature on
   * an unlocked quote is checked for its shape only: NUT-20 leaves such a quote to anyone who knows
   * its id, so there is no key to check it against and refusing it would protect nothing.
   */
  async mint(request: MintRequest): Promise<SwapResponse> {
    const quote = await this.core.refreshMintQuote(request.quote);
    if (quote.pubkey !== null) {
      requireMintSignature(quote.pubkey, quote.id, request.outputs, request.signature);
    } else if (
      request.signature !== undefined &&
      request.signature !== null &&
      !/^[0-9a-fA-F]{128}$/.test(request.signature)
    ) {
      throw new MintError(MintErrorCode.signatureInvalid, 'signature must be 64 bytes of hex');
    }
    if (quote.state === 'ISSUED') {
      for (const o of request.outputs) requirePoint(o.B_, 'B_');
      const replay = await this.replayOutputs(request.outputs, { mintQuoteId: quote.id });
      if (replay !== undefined) return replay;
      throw new MintError(MintErrorCode.quoteIssued, 'quote has already been issued');
    }
    if (quote.state === 'UNPAID') {
      if (Number(quote.expiry) < this.core.nowSeconds())
        throw new MintError(MintErrorCode.quoteExpired, 'quote is expired');
      throw new MintError(MintErrorCode.quoteNotPaid, 'quote is not paid');
    }
    const outputs = checkOutputs(this.core.registry, request.outputs, {
      maxOutputs: this.core.limits.maxOutputs,
      unit: quote.unit,
    });
    if (outputs.total !== BigInt(quote.amount)) {
      throw new MintError(
        MintErrorCode.unbalanced,
        `outputs (${outputs.total}) must add up to the quote's amount (${quote.amount})`,
      );
    }
    const { signatures } = await verifyAndSign(this.curvePool, [], outputs.outputs, {
      outputs: request.outputs,
      now: this.core.nowSeconds(),
    });
    const response: SwapResponse = { signatures };
    const now = this.core.nowSeconds();
    try {
      await this.core.db.transaction().execute(async (trx) => {
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
          null,
          quote.id,
        );
      });
    } catch (err) {
      // Only signatures issued for this quote answer a retry; outputs signed for anything else
      // are 11003 (explainConflict), not someone else's signatures.
      const replay = await this.replayOutputs(request.outputs, { mintQuoteId: quote.id });
      if (replay !== undefined) return replay;
      throw await this.core.explainConflict(err, [], outputs.outputs);
    }
    this.events.emit({ kind: 'mint_quote', id: quote.id });
    return response;
  }

  // ---------------------------------------------------------------- NUT-05, NUT-08, NUT-23 (melt)

  /** NUT-05 melt quote for a BOLT11 invoice; an invoice of this mint gets no fee reserve. */
  createMeltQuote(request: MeltQuoteRequest): Promise<MeltQuoteResponse> {
    return this.melts.createMeltQuote(request);
  }

  /** NUT-05 quote state; a PENDING quote asks the Lightning backend how its payment went. */
  getMeltQuote(id: string): Promise<MeltQuoteResponse> {
    return this.melts.getMeltQuote(id);
  }

  /** A melt quote's state as stored (with its change once PAID), without asking Lightning. */
  storedMeltQuote(id: string): Promise<MeltQuoteResponse | undefined> {
    return this.melts.storedMeltQuote(id);
  }

  /** NUT-05 melt (synchronous), NUT-08 change; a retry of a paid melt gets its answer again. */
  melt(request: MeltRequest): Promise<MeltQuoteResponse> {
    return this.melts.melt(request);
  }

  /** Settles or releases melts a previous run left PENDING (done by create()). */
  recoverPendingMelts(): Promise<void> {
    return this.melts.recoverPendingMelts();
  }

  // ---------------------------------------------------------------- NUT-07, NUT-09

  async checkState(Ys: readonly string[]): Promise<CheckStateResponse> {
    if (Ys.length > this.core.limits.maxCheckstate) {
      throw invalidRequest(`at most ${this.core.limits.maxCheckstate} Ys per request`);
    }
    const lower = Ys.map((y) => requirePoint(y, 'Y'));
    const states = await proofStates(this.core.db, [...new Set(lower)]);
    return {
      states: lower.map((Y) => {
        const s = states.get(Y);
        return { Y, state: s?.state ?? 'UNSPENT', witness: s?.witness ?? null };
      }),
    };
  }

  async restore(outputs: readonly BlindedMessage[]): Promise<RestoreResponse> {
    if (outputs.length > this.core.limits.maxOutputs) {
      throw new MintError(
        MintErrorCode.maxOutputsExceeded,
        `at most ${this.core.limits.maxOutputs} outputs per request`,
      );
    }
    const B_s = outputs.map((o) => requirePoint(o.B_, 'B_'));
    const found = await signedOutputs(this.core.db, [...new Set(B_s)]);
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
      this.core.db,
      verified.map((v) => v.Y),
    );
    if (states.size !== verified.length || [...states.values()].some((s) => s.state !== 'SPENT'))
      return undefined;
    return this.replayOutputs(outputs, 'swap');
  }

  /**
   * The stored signatures of these outputs, in their order, if every one of them was signed by the
   * same kind of request (a mint's retry must name the quote they were issued for; a swap's gets
   * no outputs of a mint or melt).
   */
  private async replayOutputs(
    outputs: readonly { B_: string }[],
    issuedBy: { mintQuoteId: string } | 'swap',
  ): Promise<SwapResponse | undefined> {
    if (outputs.length === 0) return undefined;
    const B_s = outputs.map((o) => o.B_.toLowerCase());
    const signed = await signedOutputs(this.core.db, B_s, issuedBy);
    const signatures: BlindSignature[] = [];
    for (const B_ of B_s) {
      const signature = signed.get(B_);
      if (signature === undefined) return undefined;
      signatures.push(signature);
    }
    return { signatures };
  }

  private async reloadKeysetsFor(id: string) {
    // Bounded: an unknown id from the outside triggers at most one reload per second.
    await this.refreshKeysets(1000);
    return this.core.registry.get(id);
  }
}

function mintQuoteResponse(row: MintMintQuotesTable): MintQuoteResponse {
  const response: MintQuoteResponse = {
    quote: row.id,
    request: row.request,
    amount: Number(row.amount),
    unit: row.unit,
    state: row.state,
    expiry: Number(row.expiry),
  };
  if (row.pubkey !== null) response.pubkey = row.pubkey;
  return response;
}
