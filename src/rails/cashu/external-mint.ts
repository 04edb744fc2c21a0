import type { NodeSecret } from '../../leases/node-secret.js';
import type { Logger } from '../../log.js';
import {
  bytesToHex,
  feeForInputs,
  hashToCurve,
  parsePoint,
  unblindSignature,
} from '../../mint/crypto/index.js';
import { MintErrorCode } from '../../mint/errors.js';
import { MAX_SECRET_LENGTH } from '../../mint/http/schemas.js';
import type { Proof } from '../../mint/types.js';
import type { Rejection } from '../payment-rail.js';
import { blindedMessages, type DerivedOutput, deriveOutputs, splitPayment } from './derived-outputs.js';
import { MintClient, MintRefused, MintUnavailable, type SignatureAnswer } from './mint-client.js';
import { decodeForMint, proofsForMint } from './token-mints.js';

export interface ExternalMintOptions {
  /** The mint URL as the operator trusts it (normalised, no trailing slash). */
  url: string;
  secret: NodeSecret;
  unit: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
  maxResponseBytes?: number;
  /** Most proofs in one payment. */
  maxProofs?: number;
  /** How long the mint's keyset list is trusted before it is fetched again. */
  keysetTtlMs?: number;
  /** How long swap signatures stay in memory for the answer that follows (saves a restore). */
  signatureTtlMs?: number;
  clock?: () => number;
  logger?: Logger;
}

/** A token of this mint, checked without moving money. */
export interface ExternalPayment {
  proofs: Proof[];
  Ys: string[];
  total: bigint;
  fee: bigint;
}

/** A payment of this lease at this mint, from the store: what the node kept of it. */
export interface KeptPayment {
  key: string;
  kept: bigint;
}

/** An ended lease's share at this mint: its payments kept here and the refund paid from here. */
export interface EndedLeaseAtMint {
  leaseId: string;
  refund: bigint;
  payments: KeptPayment[];
}

interface KeysetView {
  id: string;
  unit: string;
  active: boolean;
  feePpk: number;
}

type Outcome<T> = ({ ok: true } & T) | Rejection;

const encoder = new TextEncoder();
/** A token names few keysets; more is a malformed or hostile token. */
const MAX_KEYSETS_PER_TOKEN = 8;
const MAX_CACHED_SIGNATURES = 20_000;
/** An unknown keyset id refreshes the cached keyset list at most this often. */
const MIN_KEYSET_REFRESH_MS = 5_000;
/** Outputs named in one restore or state check while collecting held proofs. */
const HELD_SLICE = 100;

/**
 * A Cashu mint the operator trusts, reached over HTTP. Its tokens are swapped there (NUT-03)
 * before anything is granted, into outputs derived from the node secret: the node's kept part and
 * the payer's change. Since those outputs can be derived again, a swap whose answer got lost, a
 * replay, or a refund after a restart all get their signatures back with NUT-09 restore; the store
 * keeps nothing but the payment rows.
 */
export class ExternalMint {
  readonly url: string;
  private readonly client: MintClient;
  private readonly secret: NodeSecret;
  private readonly unit: string;
  private readonly maxProofs: number;
  private readonly keysetTtlMs: number;
  private readonly signatureTtlMs: number;
  private readonly now: () => number;
  private readonly log: Logger | undefined;
  private keysetCache: { at: number; keysets: KeysetView[] } | undefined;
  /** Public keys by keyset id; a keyset's keys never change (its id is derived from them). */
  private readonly keysCache = new Map<string, Promise<Map<number, Uint8Array>>>();
  private readonly signatureCache = new Map<string, { signature: SignatureAnswer; until: number }>();

  constructor(options: ExternalMintOptions) {
    this.url = options.url;
    this.client = new MintClient({
      url: options.url,
      fetch: options.fetch,
      timeoutMs: options.timeoutMs,
      maxResponseBytes: options.maxResponseBytes,
    });
    this.secret = options.secret;
    this.unit = options.unit;
    this.maxProofs = options.maxProofs ?? 1000;
    this.keysetTtlMs = options.keysetTtlMs ?? 60_000;
    this.signatureTtlMs = options.signatureTtlMs ?? 120_000;
    this.now = options.clock ?? Date.now;
    this.log = options.logger;
  }

  /** Decodes and checks a token of this mint (keysets, unit, denominations, duplicates); no money moves. */
  async inspect(token: string): Promise<Outcome<{ payment: ExternalPayment }>> {
    let keysets = await this.keysets();
    if (!keysets.ok) return keysets;
    const ids = (ks: readonly KeysetView[]) => ks.map((k) => k.id);
    let decoded = decodeForMint(token, ids(keysets.keysets));
    if (!decoded.ok && decoded.reason === 'foreign' && this.keysetsOlderThan(MIN_KEYSET_REFRESH_MS)) {
      // Perhaps the mint rotated its keys since they were cached: ask once more (rate-limited, so
      // a stream of bogus tokens cannot make this node hammer the mint).
      keysets = await this.keysets(true);
      if (!keysets.ok) return keysets;
      decoded = decodeForMint(token, ids(keysets.keysets));
    }
    const taken = proofsForMint(decoded, this.url, this.maxProofs);
    if (!taken.ok) return taken;
    const proofs = taken.proofs;
    const byId = new Map(keysets.keysets.map((k) => [k.id, k]));
    const used = [...new Set(proofs.map((p) => p.id))];
    if (used.length > MAX_KEYSETS_PER_TOKEN)
      return reject('invalid_token', 'the token names too many keysets');
    for (const id of used) {
      const keyset = byId.get(id);
      if (!keyset) return reject('mint_not_accepted', `the token holds proofs that ${this.url} did not sign`);
      if (keyset.unit !== this.unit) return reject('unit_mismatch', `this node takes ${this.unit}`);
      const keys = await this.keysOf(id);
      if (!keys.ok) return keys;
      if (proofs.some((p) => p.id === id && !keys.keys.has(p.amount)))
        return reject('invalid_token', 'the token holds an amount its keyset cannot sign');
    }
    const Ys: string[] = [];
    let total = 0n;
    for (const p of proofs) {
      if (p.secret.length > MAX_SECRET_LENGTH || parsePoint(p.C.toLowerCase()) === undefined)
        return reject('invalid_token', 'the token holds a malformed proof');
      Ys.push(bytesToHex(hashToCurve(encoder.encode(p.secret))));
      total += BigInt(p.amount);
    }
    if (new Set(Ys).size !== Ys.length) return reject('invalid_token', 'the token holds a proof twice');
    const fee = feeForInputs(proofs.map((p) => byId.get(p.id)?.feePpk ?? 0));
    return { ok: true, payment: { proofs, Ys, total, fee } };
  }

  /**
   * Swaps the payment's proofs at the mint into the node's kept part and the payer's change, then
   * runs `commit` (the store transaction). A retry of the same payment re-sends the same outputs
   * and, when the mint says they are spent or signed already, restores the signatures instead.
   */
  async redeem(
    payment: ExternalPayment,
    key: string,
    price: bigint,
    commit: () => Promise<void>,
  ): Promise<Outcome<object>> {
    const split = splitPayment(payment.total, payment.fee, price, payment.proofs.length);
    if (!split) return reject('insufficient_amount', 'the token does not cover the price');
    const kept = deriveOutputs(this.secret, `keep/${key}`, split.keep);
    const outputs = [...kept, ...deriveOutputs(this.secret, `change/${key}`, split.change)];
    let swapped: Outcome<object>;
    try {
      swapped = await this.swapOrRestore(payment.proofs, outputs);
    } catch (err) {
      // Unknown outcome: nothing is recorded; the same request again finds out by restore.
      if (err instanceof MintUnavailable) return unavailableRejection(err);
      throw err;
    }
    if (!swapped.ok) return swapped;
    // A swap that is done is not always fresh: a retry gets the first answer (NUT-19 or restore),
    // and the same token may have paid an extension that was handed back (bounce), which spent
    // the kept part. The kept proofs must still be there, or the payer would get both.
    try {
      if (!(await this.unspent(kept)))
        return reject('token_spent', 'this token has already been spent (its payment was returned)');
    } catch (err) {
      if (err instanceof MintUnavailable) return unavailableRejection(err);
      throw err;
    }
    await commit();
    return { ok: true };
  }

  /** Whether the proofs of `outputs` (signed already) are all unspent at the mint. */
  private async unspent(outputs: readonly DerivedOutput[]): Promise<boolean> {
    const Ys = outputs.map((o) => bytesToHex(hashToCurve(encoder.encode(o.secret))));
    let states: Map<string, string>;
    try {
      states = await this.client.checkState(Ys);
    } catch (err) {
      throw this.unavailable(err);
    }
    return Ys.every((Y) => states.get(Y) === 'UNSPENT');
  }

  /**
   * Gives back a payment that was swapped but could not be recorded for good (the lease it was to
   * extend ended meanwhile): everything the swap made for it, kept part and change, is swapped
   * again into outputs derived for the payer, so the node no longer holds any of it. Idempotent:
   * a repeat restores the same proofs. null when this payment was never swapped at `price` (the
   * mint signed none of its outputs): nothing was taken. [] when the mint's fees eat it all.
   */
  async bounce(payment: ExternalPayment, key: string, price: bigint): Promise<Proof[] | null> {
    const split = splitPayment(payment.total, payment.fee, price, payment.proofs.length);
    if (!split) return null;
    const made = [
      ...deriveOutputs(this.secret, `keep/${key}`, split.keep),
      ...deriveOutputs(this.secret, `change/${key}`, split.change),
    ];
    const signed = await this.signatures(made);
    // None (never swapped) or only some (swapped for a request at another price, whose repeat
    // recovers it): not this request's money.
    if (signed.size !== made.length || made.length === 0) return null;
    const inputs = await this.unblind(made, signed);
    const feePpk = await this.feePpkById();
    const fee = feeForInputs(inputs.map((i) => feePpk.get(i.id) ?? 0));
    const total = split.keep + split.change;
    if (total <= fee) return [];
    const outputs = deriveOutputs(this.secret, `bounce/${key}`, total - fee);
    const known = await this.signatures(outputs);
    if (known.size === outputs.length) return this.unblind(outputs, known);
    const swapped = await this.swapOrRestore(inputs, outputs);
    if (!swapped.ok) throw new MintUnavailable(`the mint refused to return a payment: ${swapped.message}`);
    return this.restoredProofs(outputs);
  }

  /** The payer's change of payment `key` as proofs (from memory or NUT-09 restore). */
  async changeProofs(key: string, amount: bigint): Promise<Proof[]> {
    return this.restoredProofs(deriveOutputs(this.secret, `change/${key}`, amount));
  }

  /**
   * The refund of lease `leaseId`, out of what the node kept of the lease's payments at this mint
   * (their kept proofs, derived and restored). Usually those are swapped into refund outputs plus
   * a remainder for the node, both derived from the lease id, so a repeat finds the refund by
   * restore and the node pays the swap's input fee out of its remainder. When the remainder cannot
   * carry the fee (a refund of nearly everything, e.g. a failed start), the kept proofs themselves
   * are handed over: the payer gets at least the refund, never less for a fee. A lease paid at
   * several mints gets at most what was kept at this one.
   */
  async refundProofs(leaseId: string, amount: bigint, payments: readonly KeptPayment[]): Promise<Proof[]> {
    if (amount === 0n) return [];
    const refundOutputs = deriveOutputs(this.secret, `refund/${leaseId}`, amount);
    // A repeat finds the refund already signed: one restore, no swap.
    const known = await this.signatures(refundOutputs);
    if (known.size === refundOutputs.length) return this.unblind(refundOutputs, known);

    const inputs: Proof[] = [];
    let total = 0n;
    for (const p of payments) {
      if (total >= amount) break;
      if (p.kept <= 0n) continue;
      inputs.push(...(await this.restoredProofs(deriveOutputs(this.secret, `keep/${p.key}`, p.kept))));
      total += p.kept;
    }
    const feePpk = await this.feePpkById();
    const fee = feeForInputs(inputs.map((i) => feePpk.get(i.id) ?? 0));
    if (total - fee < amount) {
      if (total < amount) {
        this.log?.warn(
          { lease: leaseId, owed: String(amount), kept: String(total), mint: this.url },
          'refund capped at what the lease kept at this mint',
        );
      }
      return inputs;
    }
    const rest = deriveOutputs(this.secret, `rest/${leaseId}`, total - fee - amount);
    const swapped = await this.swapOrRestore(inputs, [...refundOutputs, ...rest]);
    if (!swapped.ok) throw new MintUnavailable(`the refund swap was refused: ${swapped.message}`);
    return this.restoredProofs(refundOutputs);
  }

  /**
   * The proofs of this mint the node holds from ended leases and can spend for a payout: the kept
   * part of each payment (`keep/<key>`) and what a refund swap left the node (`rest/<lease>`),
   * less what a refund handed over whole, and only those the mint says are unspent (a payout, a
   * refund or a bounce spent the others). Each lease's refund is made sure of first (idempotent:
   * it restores a swap done before), so a payout never spends proofs a refund still needs.
   * Running leases are not for the caller to pass: their proofs may still be refunded.
   */
  async heldProofs(leases: readonly EndedLeaseAtMint[]): Promise<Proof[]> {
    const handedOver = new Set<string>();
    const candidates: DerivedOutput[] = [];
    for (const lease of leases) {
      let kept = 0n;
      for (const p of lease.payments) {
        if (p.kept <= 0n) continue;
        candidates.push(...deriveOutputs(this.secret, `keep/${p.key}`, p.kept));
        kept += p.kept;
      }
      if (lease.refund > 0n) {
        for (const proof of await this.refundProofs(lease.leaseId, lease.refund, lease.payments))
          handedOver.add(proof.secret);
        // The remainder is less than what was kept: every denomination below it is a candidate.
        const all = (1n << BigInt(kept.toString(2).length)) - 1n;
        candidates.push(...deriveOutputs(this.secret, `rest/${lease.leaseId}`, all));
      }
    }
    // In slices: a mint bounds how many outputs one restore or state check may name.
    const held: Proof[] = [];
    for (let i = 0; i < candidates.length; i += HELD_SLICE) {
      const slice = candidates.slice(i, i + HELD_SLICE);
      const signed = await this.signatures(slice);
      const proofs = (
        await this.unblind(
          slice.filter((o) => signed.has(o.B_)),
          signed,
        )
      ).filter((p) => !handedOver.has(p.secret));
      if (proofs.length === 0) continue;
      const Ys = proofs.map((p) => bytesToHex(hashToCurve(encoder.encode(p.secret))));
      let states: Map<string, string>;
      try {
        states = await this.client.checkState(Ys);
      } catch (err) {
        throw this.unavailable(err);
      }
      held.push(...proofs.filter((_, j) => states.get(Ys[j]!) === 'UNSPENT'));
    }
    return held;
  }

  // ---- internals -----------------------------------------------------------------------------

  /**
   * One swap of `inputs` into `outputs`. A mint that reports the inputs spent or pending, or the
   * outputs signed already, may have done this very swap before (answer lost, crash): restore
   * tells. Throws MintUnavailable when the outcome is unknown.
   */
  private async swapOrRestore(
    inputs: readonly Proof[],
    outputs: readonly DerivedOutput[],
  ): Promise<Outcome<object>> {
    const keyset = await this.activeKeyset();
    if (!keyset.ok) return keyset;
    const keys = await this.keysOf(keyset.id);
    if (!keys.ok) return keys;
    if (outputs.some((o) => !keys.keys.has(o.amount)))
      return reject('invalid_token', 'the amount cannot be expressed in that mint’s denominations');
    // NUT-03: outputs in ascending order of amount, so the split does not show.
    const ordered = [...outputs].sort((a, b) => a.amount - b.amount);
    try {
      const signatures = await this.client.swap(inputs, blindedMessages(ordered, keyset.id));
      this.remember(ordered, signatures);
      return { ok: true };
    } catch (err) {
      if (!(err instanceof MintRefused)) throw this.unavailable(err);
      const maybeOurs: number[] = [
        MintErrorCode.proofsSpent,
        MintErrorCode.proofsPending,
        MintErrorCode.outputsAlreadySigned,
      ];
      if (maybeOurs.includes(err.code)) {
        const restored = await this.signatures(outputs);
        if (restored.size === outputs.length) return { ok: true };
        // Some of ours signed, not all: this token was swapped for a request of this payment at
        // another price (its answer lost). That request, repeated, recovers it.
        if (restored.size > 0)
          return reject('token_spent', 'this token was taken for another request; repeat that request');
        if (err.code === MintErrorCode.proofsPending)
          throw new MintUnavailable('the token is pending at its mint; try again shortly');
        return reject('token_spent', 'this token has already been spent');
      }
      return reject('invalid_token', `the mint refused the token (${err.code})`);
    }
  }

  /** Signatures for `outputs` that the mint has given: from memory, else NUT-09 restore. */
  private async signatures(outputs: readonly DerivedOutput[]): Promise<Map<string, SignatureAnswer>> {
    const found = new Map<string, SignatureAnswer>();
    const now = this.now();
    const missing: DerivedOutput[] = [];
    for (const o of outputs) {
      const cached = this.signatureCache.get(o.B_);
      if (cached && cached.until > now) found.set(o.B_, cached.signature);
      else missing.push(o);
    }
    if (missing.length === 0) return found;
    const keyset = await this.activeKeyset();
    // The id only shapes the request; mints look signatures up by B_.
    const id = keyset.ok ? keyset.id : (this.keysetCache?.keysets[0]?.id ?? '00');
    let restored: Map<string, SignatureAnswer>;
    try {
      restored = await this.client.restore(blindedMessages(missing, id));
    } catch (err) {
      throw this.unavailable(err);
    }
    for (const o of missing) {
      const signature = restored.get(o.B_);
      if (signature && signature.amount === o.amount) found.set(o.B_, signature);
    }
    return found;
  }

  /** The proofs of `outputs`, whose signatures must all exist at the mint. */
  private async restoredProofs(outputs: readonly DerivedOutput[]): Promise<Proof[]> {
    if (outputs.length === 0) return [];
    const signatures = await this.signatures(outputs);
    if (signatures.size !== outputs.length)
      throw new MintUnavailable('the mint does not restore every signature of a payout');
    return this.unblind(outputs, signatures);
  }

  private async unblind(
    outputs: readonly DerivedOutput[],
    signatures: ReadonlyMap<string, SignatureAnswer>,
  ): Promise<Proof[]> {
    const proofs: Proof[] = [];
    for (const o of outputs) {
      const signature = signatures.get(o.B_);
      if (!signature) throw new MintUnavailable('a signature is missing');
      const keys = await this.keysOf(signature.id);
      if (!keys.ok) throw new MintUnavailable(keys.message);
      const A = keys.keys.get(signature.amount);
      const C_ = parsePoint(signature.C_.toLowerCase());
      if (!A || !C_) throw new MintUnavailable('the mint answered a signature it cannot have made');
      proofs.push({
        id: signature.id,
        amount: o.amount,
        secret: o.secret,
        C: bytesToHex(unblindSignature(C_, o.r, A)),
      });
    }
    return proofs;
  }

  private remember(outputs: readonly DerivedOutput[], signatures: readonly SignatureAnswer[]): void {
    const now = this.now();
    if (this.signatureCache.size + outputs.length > MAX_CACHED_SIGNATURES) {
      for (const [B_, entry] of this.signatureCache) if (entry.until <= now) this.signatureCache.delete(B_);
      if (this.signatureCache.size + outputs.length > MAX_CACHED_SIGNATURES) this.signatureCache.clear();
    }
    outputs.forEach((o, i) => {
      const signature = signatures[i];
      if (signature && signature.amount === o.amount)
        this.signatureCache.set(o.B_, { signature, until: now + this.signatureTtlMs });
    });
  }

  private keysetsOlderThan(ms: number): boolean {
    return !this.keysetCache || this.now() - this.keysetCache.at >= ms;
  }

  private async keysets(refresh = false): Promise<Outcome<{ keysets: KeysetView[] }>> {
    const now = this.now();
    if (!refresh && this.keysetCache && now - this.keysetCache.at < this.keysetTtlMs)
      return { ok: true, keysets: this.keysetCache.keysets };
    try {
      const keysets = (await this.client.keysets()).map((k) => ({
        id: k.id.toLowerCase(),
        unit: k.unit,
        active: k.active,
        feePpk: k.input_fee_ppk ?? 0,
      }));
      this.keysetCache = { at: now, keysets };
      return { ok: true, keysets };
    } catch (err) {
      return unavailableRejection(this.unavailable(err));
    }
  }

  private async feePpkById(): Promise<Map<string, number>> {
    const keysets = await this.keysets();
    if (!keysets.ok) throw new MintUnavailable(keysets.message);
    return new Map(keysets.keysets.map((k) => [k.id, k.feePpk]));
  }

  /** The keyset new outputs are signed with: active, this unit, cheapest, then lowest id. */
  private async activeKeyset(): Promise<Outcome<{ id: string }>> {
    const keysets = await this.keysets();
    if (!keysets.ok) return keysets;
    const active = keysets.keysets
      .filter((k) => k.active && k.unit === this.unit)
      .sort((a, b) => a.feePpk - b.feePpk || (a.id < b.id ? -1 : 1))[0];
    if (!active) return reject('mint_unavailable', `the mint has no active ${this.unit} keyset`);
    return { ok: true, id: active.id };
  }

  private async keysOf(id: string): Promise<Outcome<{ keys: Map<number, Uint8Array> }>> {
    let pending = this.keysCache.get(id);
    if (!pending) {
      pending = this.fetchKeys(id);
      this.keysCache.set(id, pending);
      // A failure is not cached: the next request asks again.
      pending.catch(() => this.keysCache.delete(id));
    }
    try {
      return { ok: true, keys: await pending };
    } catch (err) {
      return unavailableRejection(this.unavailable(err));
    }
  }

  private async fetchKeys(id: string): Promise<Map<number, Uint8Array>> {
    const keyset = (await this.client.keys(id)).find((k) => k.id.toLowerCase() === id);
    if (!keyset) throw new MintUnavailable('the mint did not answer the keys of its keyset');
    const keys = new Map<number, Uint8Array>();
    for (const [amount, hex] of Object.entries(keyset.keys)) {
      const value = Number(amount);
      const point = parsePoint(hex.toLowerCase());
      // Amounts beyond 2^53 are never used by this node; skip rather than lose precision.
      if (point && Number.isSafeInteger(value)) keys.set(value, point);
    }
    if (keys.size === 0) throw new MintUnavailable('the mint answered a keyset without keys');
    return keys;
  }

  private unavailable(err: unknown): MintUnavailable {
    if (err instanceof MintUnavailable) {
      this.log?.warn({ mint: this.url, reason: err.message }, 'trusted mint unavailable');
      return err;
    }
    if (err instanceof MintRefused) return new MintUnavailable(`the mint refused: ${err.code}`);
    throw err;
  }
}

function reject(code: Rejection['code'], message: string): Rejection {
  return { ok: false, code, message };
}

function unavailableRejection(err: MintUnavailable): Rejection {
  return reject('mint_unavailable', `the token's mint cannot be reached right now (${err.message})`);
}
