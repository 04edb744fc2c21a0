import { createHash, randomBytes } from 'node:crypto';
import bolt11 from 'bolt11';
import secp256k1 from 'secp256k1';
import { Amount } from '../../core/amount.js';
import { AlacarteError } from '../../core/errors.js';
import { checkInvoiceRequest } from '../backend-common.js';
import { type Bolt11Network, bolt11NetworkParams, decodeBolt11, wrongNetwork } from '../bolt11.js';
import type {
  CreatedInvoice,
  InvoiceState,
  LightningBackend,
  PaymentOutcome,
  SettlementListener,
} from '../lightning-backend.js';
import type { FakeJournal } from './fake-journal.js';

export interface FakeLightningOptions {
  /** 32-byte secp256k1 private key that signs the invoices; generated from `randomBytes` when absent. */
  nodeKey?: Uint8Array;
  /** Source of preimages, payment secrets and the generated node key. */
  randomBytes?: (size: number) => Uint8Array;
  /** Milliseconds since the epoch. Every state is computed from it, so no timer keeps the process alive. */
  now?: () => number;
  /** Default 'bcrt' (regtest), so that no real wallet mistakes these invoices for payable ones. */
  network?: Bolt11Network;
  /** Lifetime of created invoices, default 3600 s. */
  expirySeconds?: number;
  /** An invoice counts as paid this long after its creation (default 0: at once), if not expired by then. */
  settleDelayMs?: number;
  /** Outgoing payments stay 'pending' this long before they succeed (default 0). */
  payDelayMs?: number;
  /** Failure injection: outgoing payments of invoices for which this says true fail. */
  payFails?: (bolt11: string) => boolean;
  /** Invoices and payments each kept in memory, oldest forgotten first (default 100,000). */
  maxEntries?: number;
  /**
   * Where invoices are kept across restarts (the node's data directory); none: memory only.
   */
  journal?: FakeJournal;
  /**
   * How often settlement listeners are told of invoices whose settle delay has passed, in ms
   * (default 100). Only runs while someone listens, on an unref'd timer.
   */
  settlementTickMs?: number;
}

interface IssuedInvoice {
  preimage: string;
  createdAt: number;
  expiresAt: number;
  /** When this node paid its own invoice (internal settlement), possibly before `settleDelayMs`. */
  paidAt: number | undefined;
}

type Payment = { kind: 'paid'; preimage: string; settlesAt: number } | { kind: 'failed'; reason: string };

/**
 * A Lightning backend in which no money moves, for demos and tests. Its invoices are real signed
 * BOLT11 strings whose payment hash is the sha256 of a preimage it keeps, and they settle by
 * themselves. It pays any invoice: for one it issued itself the preimage is the real one (internal
 * settlement); for any other the preimage is random and does NOT hash to the invoice's payment
 * hash, since nobody really paid it. Outgoing payments live in memory only; issued invoices too,
 * unless a `journal` keeps them across restarts (as the node does, in its data directory).
 */
export class FakeLightningBackend implements LightningBackend {
  readonly id = 'fake';
  readonly isTestBackend = true;
  /** hex compressed public key of the node key, the payee of every invoice created here. */
  readonly nodePubkey: string;

  private readonly nodeKey: Buffer;
  private readonly randomBytes: (size: number) => Uint8Array;
  private readonly now: () => number;
  readonly network: Bolt11Network;
  private readonly expirySeconds: number;
  private readonly settleDelayMs: number;
  private readonly payDelayMs: number;
  private readonly payFails: (bolt11: string) => boolean;
  private readonly maxEntries: number;
  private readonly invoices = new Map<string, IssuedInvoice>();
  private readonly payments = new Map<string, Payment>();
  private readonly settlementTickMs: number;
  private readonly listeners = new Set<SettlementListener>();
  /**
   * Invoices not yet announced to settlement listeners, in creation order — which is settle order,
   * since every invoice settles `settleDelayMs` after its creation. Bounded like `invoices`.
   */
  private readonly unannounced: Array<{ paymentHash: string; settlesAt: number }> = [];
  private ticker: NodeJS.Timeout | undefined;
  private readonly journal: FakeJournal | undefined;

  constructor(options: FakeLightningOptions = {}) {
    this.randomBytes = options.randomBytes ?? randomBytes;
    this.now = options.now ?? Date.now;
    this.network = options.network ?? 'bcrt';
    this.expirySeconds = positiveInteger(options.expirySeconds ?? 3600, 'expirySeconds');
    this.settleDelayMs = nonNegative(options.settleDelayMs ?? 0, 'settleDelayMs');
    this.payDelayMs = nonNegative(options.payDelayMs ?? 0, 'payDelayMs');
    this.payFails = options.payFails ?? (() => false);
    this.maxEntries = positiveInteger(options.maxEntries ?? 100_000, 'maxEntries');
    this.settlementTickMs = positiveInteger(options.settlementTickMs ?? 100, 'settlementTickMs');
    this.nodeKey = options.nodeKey ? Buffer.from(options.nodeKey) : this.generateKey();
    if (this.nodeKey.length !== 32 || !secp256k1.privateKeyVerify(this.nodeKey)) {
      throw new RangeError('nodeKey must be a valid 32-byte secp256k1 private key');
    }
    this.nodePubkey = Buffer.from(secp256k1.publicKeyCreate(this.nodeKey, true)).toString('hex');
    this.journal = options.journal;
    if (this.journal) {
      const now = this.now();
      for (const [hash, invoice] of this.journal.load()) {
        this.remember(this.invoices, hash, invoice);
        // Settled while the node was down, or about to: announced again (listeners are
        // idempotent; an invoice heard of before the restart may be heard of twice).
        const settlesAt = invoice.createdAt + this.settleDelayMs;
        if (invoice.paidAt === undefined && settlesAt < invoice.expiresAt && invoice.expiresAt > now) {
          this.unannounced.push({ paymentHash: hash, settlesAt });
          if (this.unannounced.length > this.maxEntries) this.unannounced.shift();
        }
      }
    }
  }

  async createInvoice(amount: Amount, memo: string): Promise<CreatedInvoice> {
    checkInvoiceRequest(amount, memo);
    const preimage = this.random32();
    const paymentHash = sha256Hex(preimage);
    const createdAt = this.now();
    const timestamp = Math.floor(createdAt / 1000);
    const unsigned = bolt11.encode({
      network: bolt11NetworkParams(this.network),
      millisatoshis: (amount.value * 1000n).toString(),
      timestamp,
      tags: [
        { tagName: 'payment_hash', data: paymentHash },
        { tagName: 'payment_secret', data: this.random32() },
        { tagName: 'description', data: memo },
        { tagName: 'expire_time', data: this.expirySeconds },
      ],
    });
    const signed = bolt11.sign(unsigned, this.nodeKey);
    if (signed.paymentRequest === undefined) throw new AlacarteError('internal', 'bolt11 signing failed');
    // Expiry counts from the invoice's own (whole-second) timestamp, as every decoder sees it.
    const expiresAt = (timestamp + this.expirySeconds) * 1000;
    const issued = { preimage, createdAt, expiresAt, paidAt: undefined };
    this.remember(this.invoices, paymentHash, issued);
    this.journal?.issued(paymentHash, issued);
    if (this.journal?.tooLong) this.journal.rewrite(this.invoices);
    const settlesAt = createdAt + this.settleDelayMs;
    if (settlesAt < expiresAt) {
      this.unannounced.push({ paymentHash, settlesAt });
      if (this.unannounced.length > this.maxEntries) this.unannounced.shift();
    }
    return { bolt11: signed.paymentRequest, paymentHash, expiresAt: new Date(expiresAt) };
  }

  /** An unknown payment hash (never issued here, or forgotten) answers 'expired': it can never be paid to us. */
  async invoiceState(paymentHash: string): Promise<InvoiceState> {
    const invoice = this.invoices.get(paymentHash);
    if (invoice === undefined) return 'expired';
    const now = this.now();
    const settlesAt = invoice.createdAt + this.settleDelayMs;
    const settled = settlesAt < invoice.expiresAt && now >= settlesAt;
    if (settled || invoice.paidAt !== undefined) return 'paid';
    return now >= invoice.expiresAt ? 'expired' : 'unpaid';
  }

  /** Pays without routing fees, so any `maxFee` holds. */
  async payInvoice(request: string, _maxFee: Amount): Promise<PaymentOutcome> {
    const decoded = decodeBolt11(request);
    if (decoded === undefined) return { state: 'failed', reason: 'not a valid BOLT11 invoice' };
    // As a real node does: an invoice of another chain cannot be paid from this one.
    const otherChain = wrongNetwork(decoded, this.network);
    if (otherChain) return { state: 'failed', reason: otherChain };
    if (decoded.amountMsat === undefined)
      return { state: 'failed', reason: 'amountless invoices are not supported' };
    const earlier = this.payments.get(decoded.paymentHash);
    // Paying the same hash twice would pay twice on a real node; answer the first attempt instead.
    if (earlier?.kind === 'paid') return this.outcome(earlier);
    const now = this.now();
    if (now >= decoded.expiresAt.getTime()) return { state: 'failed', reason: 'invoice expired' };
    let payment: Payment;
    if (this.payFails(request)) {
      payment = { kind: 'failed', reason: 'payment failed (injected)' };
    } else {
      // Only an invoice we signed is ours: someone else's invoice may reuse one of our payment hashes.
      const own =
        decoded.payeeNodeKey === this.nodePubkey ? this.invoices.get(decoded.paymentHash) : undefined;
      if (own !== undefined && own.paidAt === undefined) {
        own.paidAt = now;
        this.journal?.paid(decoded.paymentHash, now);
        this.announce(decoded.paymentHash);
      }
      payment = {
        kind: 'paid',
        preimage: own?.preimage ?? this.random32(),
        settlesAt: now + this.payDelayMs,
      };
    }
    this.remember(this.payments, decoded.paymentHash, payment);
    return this.outcome(payment);
  }

  /** An unknown payment hash answers 'failed': this backend never paid it (or has forgotten it after a restart). */
  async paymentState(paymentHash: string): Promise<PaymentOutcome> {
    const payment = this.payments.get(paymentHash);
    if (payment === undefined) return { state: 'failed', reason: 'unknown payment' };
    return this.outcome(payment);
  }

  /**
   * Settlements as they happen: an invoice paid by this node itself at once, one settled by its
   * delay within `settlementTickMs` of settling (checked against `now`, so a manual clock works).
   */
  onSettlement(listener: SettlementListener): () => void {
    this.listeners.add(listener);
    if (this.ticker === undefined) {
      this.ticker = setInterval(() => this.announceDue(), this.settlementTickMs);
      this.ticker.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.ticker !== undefined) {
        clearInterval(this.ticker);
        this.ticker = undefined;
      }
    };
  }

  private announceDue(): void {
    const now = this.now();
    while (this.unannounced.length > 0 && this.unannounced[0]!.settlesAt <= now) {
      const { paymentHash } = this.unannounced.shift()!;
      const invoice = this.invoices.get(paymentHash);
      // Forgotten, or already announced when this node paid it itself.
      if (invoice === undefined || invoice.paidAt !== undefined) continue;
      this.announce(paymentHash);
    }
  }

  private announce(paymentHash: string): void {
    for (const listener of this.listeners) {
      try {
        listener(paymentHash);
      } catch {
        // A listener's fault is its own; the others still hear of the payment.
      }
    }
  }

  private outcome(payment: Payment): PaymentOutcome {
    if (payment.kind === 'failed') return { state: 'failed', reason: payment.reason };
    if (this.now() < payment.settlesAt) return { state: 'pending' };
    return { state: 'paid', preimage: payment.preimage, feePaid: Amount.zero('sat') };
  }

  private remember<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key); // re-inserting moves the key to the young end of the eviction order
    map.set(key, value);
    while (map.size > this.maxEntries) {
      const oldest = map.keys().next();
      if (oldest.done) break;
      map.delete(oldest.value);
    }
  }

  private random32(): string {
    const bytes = this.randomBytes(32);
    if (bytes.length !== 32) throw new AlacarteError('internal', 'random source returned the wrong length');
    return Buffer.from(bytes).toString('hex');
  }

  private generateKey(): Buffer {
    // A random 32-byte string is a valid key except with probability ~2^-128; loop anyway.
    for (let i = 0; i < 100; i++) {
      const key = Buffer.from(this.random32(), 'hex');
      if (secp256k1.privateKeyVerify(key)) return key;
    }
    throw new AlacarteError('internal', 'random source yields no valid secp256k1 key');
  }
}

function sha256Hex(hex: string): string {
  return createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex');
}

function positiveInteger(n: number, name: string): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`${name} must be a positive integer`);
  return n;
}

function nonNegative(n: number, name: string): number {
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`${name} must be a non-negative number`);
  return n;
}
