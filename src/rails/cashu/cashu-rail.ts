import { createHash } from 'node:crypto';
import {
  Amount as CashuAmount,
  type Proof as CashuProof,
  getDecodedToken,
  getEncodedToken,
  getTokenMetadata,
} from '@cashu/cashu-ts';
import { Amount } from '../../core/amount.js';
import type { PaymentKey } from '../../core/ids.js';
import type { NodeSecret } from '../../leases/node-secret.js';
import { MintError, MintErrorCode } from '../../mint/errors.js';
import type { NodePayments, UnblindedItem } from '../../mint/node-payments.js';
import type { MintTrx } from '../../mint/store/mint-store.js';
import type { Proof } from '../../mint/types.js';
import type { Database } from '../../store/database.js';
import type {
  Challenge,
  InspectedPayment,
  PaymentHeaders,
  PaymentRail,
  PayoutPart,
  Rejection,
} from '../payment-rail.js';
import { encodePaymentRequest } from './nut-18.js';

export interface CashuRailOptions {
  /** This node's own mint, used in-process. */
  mint: NodePayments;
  /** The URL wallets know this node's mint by (read late: the port may be known only once listening). */
  mintUrl: () => string;
  unit: string;
  secret: NodeSecret;
  /** Largest `X-Cashu` header accepted, in bytes. */
  maxTokenBytes?: number;
  /** Most proofs in one payment. */
  maxProofs?: number;
}

const TOKEN_PREFIX = /^cashu[AB][A-Za-z0-9_\-+/=]+$/;

/**
 * NUT-24 over this node's own mint: a 402 carries a NUT-18 request; a token in `X-Cashu` is
 * checked without moving money, then redeemed in-process in the lease's own store transaction.
 * Change and refunds are fresh ecash of the same mint whose secrets derive from the node secret,
 * so a replay shows the same tokens without the store keeping them.
 */
export class CashuRail implements PaymentRail {
  readonly id = 'cashu';
  private readonly mint: NodePayments;
  private readonly mintUrlOf: () => string;
  private readonly unit: string;
  private readonly secret: NodeSecret;
  private readonly maxTokenBytes: number;
  private readonly maxProofs: number;
  /** The decoded proofs of each inspected payment, until it is redeemed or dropped. */
  private readonly proofsOf = new WeakMap<InspectedPayment, Proof[]>();

  constructor(options: CashuRailOptions) {
    this.mint = options.mint;
    this.mintUrlOf = options.mintUrl;
    this.unit = options.unit;
    this.secret = options.secret;
    this.maxTokenBytes = options.maxTokenBytes ?? 64 * 1024;
    this.maxProofs = options.maxProofs ?? 1000;
  }

  private get mintUrl(): string {
    return this.mintUrlOf();
  }

  challenge(price: Amount): Challenge {
    const mints = [this.mintUrl];
    return {
      headers: { 'x-cashu': encodePaymentRequest({ amount: price, mints }) },
      body: { amount: price.toNumber(), unit: price.unit, mints },
    };
  }

  async inspect(
    headers: PaymentHeaders,
  ): Promise<{ ok: true; payment: InspectedPayment } | Rejection | undefined> {
    const header = headers['x-cashu'];
    if (header === undefined || header === '') return undefined;
    if (typeof header !== 'string') return reject('invalid_token', 'send exactly one X-Cashu header');
    if (header.length > this.maxTokenBytes) return reject('invalid_token', 'the token is too large');
    if (!TOKEN_PREFIX.test(header))
      return reject('invalid_token', 'X-Cashu must hold a cashuA or cashuB token');

    let mintUrl: string;
    let unit: string;
    try {
      const meta = getTokenMetadata(header);
      // The decoder checks no types: a V3 (JSON) token may name a number or a list as its mint.
      if (typeof meta.mint !== 'string' || (meta.unit !== undefined && typeof meta.unit !== 'string'))
        return reject('invalid_token', 'the token names no mint or unit');
      mintUrl = meta.mint;
      unit = meta.unit ?? 'sat';
    } catch {
      return reject('invalid_token', 'the token cannot be decoded');
    }
    if (normalizeUrl(mintUrl) !== normalizeUrl(this.mintUrl)) {
      return reject(
        'mint_not_accepted',
        `tokens of ${truncate(mintUrl)} are not accepted here; use ${this.mintUrl}`,
      );
    }
    if (unit !== this.unit)
      return reject('unit_mismatch', `this node takes ${this.unit}, not ${truncate(unit)}`);

    let proofs: Proof[];
    try {
      proofs = toMintProofs(getDecodedToken(header, this.mint.keysetIds()).proofs, this.maxProofs);
    } catch {
      return reject('invalid_token', 'the token cannot be decoded or holds malformed proofs');
    }
    let inspected: ReturnType<NodePayments['inspect']>;
    try {
      inspected = this.mint.inspect(proofs);
    } catch (err) {
      if (err instanceof MintError)
        return reject('invalid_token', `the token is not valid here: ${err.message}`);
      throw err;
    }
    if (inspected.unit !== this.unit) return reject('unit_mismatch', `this node takes ${this.unit}`);
    const payment: InspectedPayment = {
      rail: this.id,
      key: paymentKey(inspected.Ys),
      amount: Amount.of(inspected.total, this.unit),
      fee: Amount.of(inspected.fee, this.unit),
      source: this.mintUrl,
    };
    this.proofsOf.set(payment, proofs);
    return { ok: true, payment };
  }

  async redeem(
    payment: InspectedPayment,
    _price: Amount,
    record: (trx: Database) => Promise<void>,
  ): Promise<{ ok: true } | Rejection> {
    const proofs = this.proofsOf.get(payment);
    if (!proofs) throw new Error('redeem of a payment this rail did not inspect');
    try {
      // One Kysely instance serves every domain's tables; the transaction is the same object.
      await this.mint.take(proofs, (trx: MintTrx) => record(trx as unknown as Database));
      return { ok: true };
    } catch (err) {
      if (err instanceof MintError) {
        if (err.code === MintErrorCode.proofsSpent || err.code === MintErrorCode.proofsPending) {
          return reject('token_spent', 'this token has already been spent');
        }
        return reject('invalid_token', `the token is not valid: ${err.message}`);
      }
      throw err;
    }
  }

  async book(trx: Database, _source: string, parts: readonly PayoutPart[]): Promise<void> {
    await this.mint.issue(trx as unknown as MintTrx, this.unit, this.items(parts));
  }

  async payout(_source: string, parts: readonly PayoutPart[]): Promise<string | null> {
    const items = this.items(parts);
    if (items.length === 0) return null;
    const proofs = await this.mint.issued(items);
    return getEncodedToken({
      mint: this.mintUrl,
      unit: this.unit,
      proofs: proofs.map((p) => ({ ...p, amount: CashuAmount.from(p.amount) })),
    });
  }

  /** The denominations and derived secrets of every part, in a fixed order. */
  private items(parts: readonly PayoutPart[]): UnblindedItem[] {
    const items: UnblindedItem[] = [];
    for (const part of parts) {
      denominations(part.amount.value).forEach((amount, i) => {
        items.push({
          amount,
          secret: this.secret.derive('payout', `${part.purpose}/${part.subject}/${i}`).toString('hex'),
        });
      });
    }
    return items;
  }
}

/** The payment's idempotency key: sha256 over its proofs' sorted Y points. */
export function paymentKey(Ys: readonly string[]): PaymentKey {
  const hash = createHash('sha256');
  for (const Y of [...Ys].sort()) hash.update(Y);
  return hash.digest('hex') as PaymentKey;
}

/** Powers of two that add up to `amount`, smallest first. */
export function denominations(amount: bigint): number[] {
  const out: number[] = [];
  for (let bit = 0n; amount >> bit > 0n; bit++) {
    if ((amount >> bit) & 1n) out.push(Number(1n << bit));
  }
  return out;
}

function toMintProofs(proofs: readonly CashuProof[], max: number): Proof[] {
  if (proofs.length === 0 || proofs.length > max) throw new Error('proof count out of range');
  return proofs.map((p) => {
    const amount = p.amount.toNumber();
    if (!Number.isSafeInteger(amount) || amount <= 0) throw new Error('bad amount');
    if (typeof p.secret !== 'string' || typeof p.C !== 'string' || typeof p.id !== 'string')
      throw new Error('bad proof');
    const proof: Proof = { id: p.id, amount, secret: p.secret, C: p.C };
    if (p.witness !== undefined) proof.witness = p.witness as Proof['witness'];
    return proof;
  });
}

function normalizeUrl(url: string): string {
  return url.trim().replace(/\/+$/, '').toLowerCase();
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function reject(code: Rejection['code'], message: string): Rejection {
  return { ok: false, code, message };
}
