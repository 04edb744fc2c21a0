import type { LightningBackend } from '../lightning/lightning-backend.js';
import { logRef } from '../log.js';
import { invalidRequest, MintError, MintErrorCode } from './errors.js';
import type { MintEvents } from './events.js';
import type { VerifiedInput } from './inputs.js';
import type { KeysetRegistry } from './keyset-registry.js';
import type { CheckedOutput } from './outputs.js';
import {
  getMintQuote,
  isUniqueViolation,
  type MintDb,
  proofStates,
  signedOutputs,
} from './store/mint-store.js';
import type { MintMintQuotesTable, MintProofsTable } from './store/tables.js';

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
  meltQuoteTtlSeconds: 600,
};

export const UNIT = 'sat';
export const METHOD = 'bolt11';

/**
 * What every NUT handler of the mint shares: its store, Lightning, keysets, limits, clock, and the
 * few steps more than one of them takes (mint quote state, spend rows, conflict diagnosis).
 */
export class MintCore {
  constructor(
    readonly db: MintDb,
    readonly lightning: LightningBackend,
    readonly registry: KeysetRegistry,
    readonly limits: MintLimits,
    readonly log: MintLogger,
    readonly clock: () => number,
    private readonly random: (n: number) => Uint8Array,
    /** committed state changes, for NUT-17 subscribers */
    readonly events: MintEvents,
  ) {}

  nowSeconds(): number {
    return Math.floor(this.clock() / 1000);
  }

  /** UUID v7 (NUT-04/05): 48 bits of milliseconds, then 74 random bits from the CSPRNG. */
  quoteId(): string {
    const b = Buffer.from(this.random(16));
    const ms = this.clock();
    b.writeUIntBE(Math.floor(ms), 0, 6);
    b[6] = (b[6]! & 0x0f) | 0x70;
    b[8] = (b[8]! & 0x3f) | 0x80;
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  requireUnit(unit: string): void {
    if (unit !== UNIT) throw new MintError(MintErrorCode.unitUnsupported, `unit ${unit} is not supported`);
  }

  proofRows(
    verified: readonly VerifiedInput[],
    state: MintProofsTable['state'],
    meltQuoteId: string | null,
    now: number,
  ): MintProofsTable[] {
    return verified.map((v) => ({
      y: v.Y,
      keyset_id: v.keysetId,
      amount: v.proof.amount,
      witness: v.witness,
      state,
      melt_quote_id: meltQuoteId,
      created_at: now,
    }));
  }

  /** Turns a failed spend transaction into the NUT error the wallet should see. */
  async explainConflict(
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

  async refreshMintQuote(id: string): Promise<MintMintQuotesTable> {
    const quote = await getMintQuote(this.db, id);
    if (quote === undefined) throw invalidRequest('unknown quote', 404);
    if (quote.state !== 'UNPAID') return quote;
    let state: string;
    try {
      state = await this.lightning.invoiceState(quote.payment_hash);
    } catch (err) {
      // Lightning unreachable: the quote simply stays UNPAID for now.
      this.log.warn({ err, quoteRef: logRef(id) }, 'mint quote: invoice state unknown');
      return quote;
    }
    if (state !== 'paid') return quote;
    await this.markMintQuotePaid(quote.id);
    return (await getMintQuote(this.db, id)) ?? quote;
  }

  async markMintQuotePaid(id: string): Promise<void> {
    const updated = await this.db
      .updateTable('mint_mint_quotes')
      .set({ state: 'PAID', paid_at: this.nowSeconds() })
      .where('id', '=', id)
      .where('state', '=', 'UNPAID')
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 1) this.events.emit({ kind: 'mint_quote', id });
  }

  /**
   * An incoming Lightning payment (LightningBackend.onSettlement): the UNPAID mint quote of this
   * invoice, if any, becomes PAID — after asking the backend, so a bogus announcement moves nothing.
   */
  async settleIncoming(paymentHash: string): Promise<void> {
    const quote = await this.db
      .selectFrom('mint_mint_quotes')
      .select(['id', 'state'])
      .where('payment_hash', '=', paymentHash)
      .executeTakeFirst();
    if (quote === undefined || quote.state !== 'UNPAID') return;
    await this.refreshMintQuote(quote.id);
  }

  /** A NUT-07 change of these verified inputs, told to subscribers. */
  proofsChanged(verified: readonly VerifiedInput[], state: 'PENDING' | 'SPENT'): void {
    this.events.emit({
      kind: 'proof_state',
      states: verified.map((v) => ({ Y: v.Y, state, witness: v.witness })),
    });
  }
}
