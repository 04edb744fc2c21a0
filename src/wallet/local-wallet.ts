import { randomUUID } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  Amount as CashuAmount,
  CheckStateEnum,
  getEncodedToken,
  getTokenMetadata,
  MeltQuoteState,
  MintOperationError,
  MintQuoteState,
  type Proof,
  type ProofLike,
  type Token,
  Wallet,
} from '@cashu/cashu-ts';
import { generateMnemonic, mnemonicToSeedSync, validateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { Amount } from '../core/amount.js';
import { StoreCounterSource } from './counter-source.js';
import { InsufficientFundsError, WalletOperationError } from './errors.js';
import type { PaymentPurpose, PendingOp, StoredProof } from './wallet-state.js';
import { WalletStore } from './wallet-store.js';

export interface LocalWalletOptions {
  /** Directory of wallet.json; default $ALACARTE_HOME or ~/.local/share/alacarte. */
  home?: string;
  unit?: string;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** Waits between polls of a mint quote. */
  sleep?: (ms: number) => Promise<void>;
  /** How long `open` waits for another process using the same wallet (default 0). */
  lockWaitMs?: number;
}

/** How an operation left after `reconcile`: settled, still waiting at the mint, or needing the server. */
export type Settlement = 'settled' | 'pending' | 'needs-server';

export interface Topup {
  opId: string;
  quote: string;
  /** The BOLT11 invoice to pay. */
  request: string;
  amount: Amount;
  expiry: number | null;
}

export interface Payment {
  opId: string;
  token: string;
  mint: string;
  paid: Amount;
}

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ALACARTE_HOME) return env.ALACARTE_HOME;
  const base = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'alacarte');
}

const sumOf = (proofs: ReadonlyArray<{ amount: number }>) => proofs.reduce((n, p) => n + p.amount, 0);

/**
 * A Cashu wallet kept in a local file, using @cashu/cashu-ts for all ecash crypto. Secrets are
 * deterministic (NUT-13) from a BIP-39 seed phrase, so NUT-09 restore can rebuild the wallet.
 *
 * Crash safety: every operation that hands proofs to anyone (a mint swap, a melt, a payment to a
 * server, a printed token) is first recorded as a pending operation that holds those proofs and,
 * as it runs, the counter ranges of the outputs it asks for. `reconcile` settles what a crash left
 * behind, asking the mint (NUT-07 checkstate, NUT-09 restore) what really happened. Proofs live in
 * memory and in the wallet file only; nothing here logs.
 */
export class LocalWallet {
  readonly unit: string;
  private readonly counters: StoreCounterSource;
  private readonly wallets = new Map<string, Promise<Wallet>>();
  private seedBytes: Uint8Array | undefined;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly store: WalletStore,
    options: LocalWalletOptions,
  ) {
    this.unit = options.unit ?? 'sat';
    this.counters = new StoreCounterSource(store);
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** Opens (or creates, with a new seed phrase) the wallet in `home`, taking its lock. */
  static open(options: LocalWalletOptions & { mnemonic?: string } = {}): LocalWallet {
    const home = options.home ?? defaultHome();
    if (options.mnemonic !== undefined && !validateMnemonic(options.mnemonic, wordlist)) {
      throw new WalletOperationError('not a valid BIP-39 seed phrase');
    }
    const store = WalletStore.open({
      home,
      newMnemonic: () => options.mnemonic ?? generateMnemonic(wordlist, 128),
      lockWaitMs: options.lockWaitMs,
    });
    return new LocalWallet(store, options);
  }

  /** True when `open` created the wallet file just now. */
  get isNew(): boolean {
    return this.store.created;
  }

  get path(): string {
    return this.store.path;
  }

  /** The seed phrase: whoever has it owns the ecash. Show it only on explicit request. */
  get mnemonic(): string {
    return this.store.mnemonic;
  }

  close(): void {
    this.store.close();
  }

  balance(mint?: string): Amount {
    return Amount.of(sumOf(this.store.proofs({ mint, unit: this.unit })), this.unit);
  }

  /** Spendable amount per mint. */
  balances(): Array<{ mint: string; amount: Amount }> {
    const by = new Map<string, number>();
    for (const p of this.store.proofs({ unit: this.unit })) by.set(p.mint, (by.get(p.mint) ?? 0) + p.amount);
    return [...by].map(([mint, n]) => ({ mint, amount: Amount.of(n, this.unit) }));
  }

  /** Ecash tied up in operations not yet settled (it comes back or is spent on the next reconcile). */
  pending(): Array<{ id: string; kind: PendingOp['kind']; mint: string; amount: Amount }> {
    return this.store.ops().map((op) => ({
      id: op.id,
      kind: op.kind,
      mint: op.mint,
      amount: Amount.of(sumOf(op.inputs) || (op.kind === 'mint' ? (op.amount ?? 0) : 0), this.unit),
    }));
  }

  pendingOps(): readonly PendingOp[] {
    return this.store.ops();
  }

  // ---- topup (NUT-04) ----

  async createTopup(mint: string, amount: Amount): Promise<Topup> {
    return this.serial(async () => {
      const w = await this.cashu(mint);
      const q = await w.createMintQuoteBolt11(amount.value);
      const opId = this.newOp({
        kind: 'mint',
        mint,
        quote: q.quote,
        amount: amount.toNumber(),
        expiry: q.expiry ?? null,
      });
      return { opId, quote: q.quote, request: q.request, amount, expiry: q.expiry ?? null };
    });
  }

  /** Waits until the topup's invoice is paid, then mints; resolves with the amount added. */
  async completeTopup(
    opId: string,
    options: { pollMs?: number; signal?: AbortSignal; onWait?: () => void } = {},
  ): Promise<Amount> {
    const op = this.requireOp(opId, 'mint');
    const w = await this.cashu(op.mint);
    for (;;) {
      options.signal?.throwIfAborted();
      const q = await w.checkMintQuoteBolt11(op.quote ?? '');
      if (q.state === MintQuoteState.PAID || q.state === MintQuoteState.ISSUED) break;
      if (op.expiry && this.now() / 1000 > op.expiry) {
        this.dropOp(opId);
        throw new WalletOperationError('the invoice expired before it was paid');
      }
      options.onWait?.();
      await this.sleep(options.pollMs ?? 1000);
      options.signal?.throwIfAborted();
    }
    const before = this.balance(op.mint);
    const outcome = await this.serial(() => this.settle(op));
    if (outcome !== 'settled')
      throw new WalletOperationError('minting did not complete; run the command again');
    return this.balance(op.mint).sub(before);
  }

  // ---- send and receive ----

  /**
   * Takes exactly `amount` out of the balance as a token. The proofs stay recorded as a pending
   * send until `confirmSent` (call it once the token is out, e.g. printed); after a crash before
   * that, reconcile puts them back if nobody redeemed them.
   */
  async send(mint: string, amount: Amount): Promise<{ opId: string; token: string }> {
    return this.serial(async () => {
      const { proofs } = await this.selectExact(mint, amount, { allowOverpay: false });
      const token = this.encode(mint, proofs);
      const opId = this.newOp({ kind: 'send', mint, inputs: proofs, token }, proofs);
      return { opId, token };
    });
  }

  confirmSent(opId: string): void {
    this.dropOp(opId);
  }

  /** Redeems a token into this wallet (a swap at its mint); resolves with the amount received. */
  async receive(token: string): Promise<Amount> {
    let meta: ReturnType<typeof getTokenMetadata>;
    try {
      meta = getTokenMetadata(token.trim());
    } catch (err) {
      throw new WalletOperationError('not a Cashu token', undefined, { cause: err });
    }
    if ((meta.unit ?? 'sat') !== this.unit) {
      throw new WalletOperationError(`the token is in ${meta.unit}, this wallet holds ${this.unit}`);
    }
    return this.serial(async () => {
      const opId = this.newOp({ kind: 'receive', mint: meta.mint, token: token.trim() });
      const before = this.balance(meta.mint);
      const outcome = await this.settle(this.requireOp(opId, 'receive'), { throwDefinitive: true });
      if (outcome !== 'settled')
        throw new WalletOperationError('receiving did not complete; it will be retried');
      return this.balance(meta.mint).sub(before);
    });
  }

  // ---- payments to a server (NUT-24) ----

  /**
   * Prepares a token worth `amount` from one of `mints` for a payment, recorded before it leaves:
   * exact when the proofs can be split to the price, else the smallest overpayment (the server
   * returns change). Throws InsufficientFundsError when no accepted mint holds enough.
   */
  async pay(request: {
    mints: readonly string[];
    amount: Amount;
    purpose: PaymentPurpose;
  }): Promise<Payment> {
    return this.serial(async () => {
      const mint = this.mintFor(request.mints, request.amount);
      const { proofs } = await this.selectExact(mint, request.amount, { allowOverpay: true });
      const token = this.encode(mint, proofs);
      const opId = this.newOp(
        { kind: 'payment', mint, inputs: proofs, token, purpose: request.purpose },
        proofs,
      );
      return { opId, token, mint, paid: Amount.of(sumOf(proofs), this.unit) };
    });
  }

  /**
   * The server took the payment; change (a token of the same mint), if any, is redeemed — or the
   * tokens it gave back (a refund, one per mint it was paid from).
   */
  async paymentAccepted(
    opId: string,
    change: string | readonly string[] | null | undefined,
  ): Promise<Amount> {
    return this.serial(async () => this.acceptToken(opId, change));
  }

  /** The server refused the payment without taking it: the proofs come back once the mint confirms. */
  async paymentRejected(opId: string): Promise<void> {
    await this.serial(async () => {
      const op = this.store.op(opId);
      if (!op) return;
      const w = await this.cashu(op.mint);
      const states = await this.states(w, op.inputs);
      if (states.some((s) => s !== CheckStateEnum.UNSPENT)) return; // left for reconcile (replay)
      this.store.update((s) => {
        s.ops = s.ops.filter((o) => o.id !== opId);
        s.proofs.push(...op.inputs);
      });
    });
  }

  /**
   * A replayed payment that the server still refuses although the mint says its proofs are spent:
   * nothing more can be got back, so the record is closed (the ecash is gone).
   */
  async abandonPayment(opId: string): Promise<void> {
    await this.serial(async () => this.dropOp(opId));
  }

  /** Records that a lease is being stopped, so that a refund lost to a crash can be fetched again. */
  beginRefund(serverUrl: string, leaseId: string, mint: string): string {
    return this.newOp({ kind: 'refund', mint, leaseId, serverUrl });
  }

  /** A stop answered: redeems the refund tokens (one per mint that was paid, if any) and closes the record. */
  async refundReceived(opId: string, refund: string | readonly string[] | null | undefined): Promise<Amount> {
    return this.serial(async () => this.acceptToken(opId, refund));
  }

  // ---- withdraw (NUT-05) ----

  async withdraw(
    invoice: string,
    mint: string,
  ): Promise<{ amount: Amount; fee: Amount; preimage: string | null }> {
    return this.serial(async () => {
      const w = await this.cashu(mint);
      const q = await w.createMeltQuoteBolt11(invoice.trim());
      const need = q.amount.add(q.fee_reserve).toNumber();
      const have = this.store.proofs({ mint, unit: this.unit });
      if (sumOf(have) < need) {
        throw new InsufficientFundsError(Amount.of(need, this.unit), Amount.of(sumOf(have), this.unit));
      }
      const picked = w.selectProofsToSend(have.map(toLike), need, true, false).send;
      const inputs = this.match(have, picked);
      const opId = this.newOp({ kind: 'melt', mint, inputs, quote: q.quote, amount: need }, inputs);
      try {
        const res = await this.withOp(opId, () => w.meltProofsBolt11(q, inputs.map(toLike)));
        if (res.quote.state !== MeltQuoteState.PAID)
          throw new WalletOperationError('the payment did not go through');
        const change = res.change.map((p) => toStored(p, mint, this.unit));
        this.store.update((s) => {
          s.ops = s.ops.filter((o) => o.id !== opId);
          s.proofs.push(...change);
        });
        const spent = sumOf(inputs) - sumOf(change);
        const paid = q.amount.toNumber();
        return {
          amount: Amount.of(paid, this.unit),
          fee: Amount.of(Math.max(0, spent - paid), this.unit),
          // The proof of payment an L402 server asks for; null when the mint's backend gives none.
          preimage: res.quote.payment_preimage ?? null,
        };
      } catch (err) {
        await this.settle(this.requireOp(opId, 'melt')).catch(() => undefined);
        throw toWalletError(err, 'withdrawal failed');
      }
    });
  }

  // ---- restore (NUT-09) ----

  /**
   * Scans the mint for every proof this seed could have created (NUT-09) and adds the unspent ones
   * not yet in the wallet; resolves with the amount added.
   */
  async restore(mint: string, options: { gapLimit?: number; batchSize?: number } = {}): Promise<Amount> {
    return this.serial(async () => {
      const w = await this.cashu(mint);
      const found: StoredProof[] = [];
      for (const keyset of w.keyChain.getKeysets()) {
        if (keyset.unit !== this.unit || !keyset.hasKeys || !keyset.hasHexId) continue;
        const { proofs, lastCounterWithSignature } = await w.batchRestore(
          options.gapLimit ?? 100,
          options.batchSize ?? 100,
          0,
          keyset.id,
        );
        if (lastCounterWithSignature !== undefined)
          this.store.advanceCounter(keyset.id, lastCounterWithSignature + 1);
        found.push(...(await this.unspentUnknown(w, proofs, mint)));
      }
      if (found.length) {
        this.store.update((s) => {
          s.proofs.push(...found);
        });
      }
      return Amount.of(sumOf(found), this.unit);
    });
  }

  // ---- recovery ----

  /**
   * Settles operations a crash (or a lost connection) left pending, asking the mint what happened.
   * Payments the server took, and stops whose refund was not redeemed, come back as
   * `needs-server`: the SDK replays those requests (same token, same idempotency key).
   */
  async reconcile(): Promise<Array<{ op: PendingOp; outcome: Settlement }>> {
    return this.serial(async () => {
      const out: Array<{ op: PendingOp; outcome: Settlement }> = [];
      for (const op of [...this.store.ops()]) {
        let outcome: Settlement;
        try {
          outcome = await this.settle(op);
        } catch {
          outcome = 'pending';
        }
        out.push({ op, outcome });
      }
      return out;
    });
  }

  // ---- internals ----

  private async acceptToken(
    opId: string,
    token: string | readonly string[] | null | undefined,
  ): Promise<Amount> {
    const op = this.store.op(opId);
    if (!op) return Amount.zero(this.unit);
    const tokens = (typeof token === 'string' ? [token] : (token ?? [])).filter((t) => t.length > 0);
    if (tokens.length === 0) {
      this.dropOp(opId);
      return Amount.zero(this.unit);
    }
    const receives = tokens.map((t) => {
      let mint = op.mint;
      try {
        mint = getTokenMetadata(t).mint;
      } catch {
        // malformed: the receive below fails definitively and the record is dropped
      }
      return { id: randomUUID(), mint, token: t };
    });
    // One write swaps the settled record for the receives of the returned tokens.
    this.store.update((s) => {
      s.ops = s.ops.filter((o) => o.id !== opId);
      for (const r of receives)
        s.ops.push(this.opRecord({ id: r.id, kind: 'receive', mint: r.mint, token: r.token }));
    });
    let received = Amount.zero(this.unit);
    for (const r of receives) {
      const before = this.balance(r.mint);
      try {
        await this.settle(this.requireOp(r.id, 'receive'));
      } catch {
        // stays pending: the next reconcile redeems it
      }
      received = received.add(this.balance(r.mint).sub(before));
    }
    return received;
  }

  /** Settles one pending operation from the mint's view. Callers hold the queue. */
  private async settle(op: PendingOp, opts: { throwDefinitive?: boolean } = {}): Promise<Settlement> {
    if (op.kind === 'refund') return 'needs-server';
    const w = await this.cashu(op.mint);
    switch (op.kind) {
      case 'swap':
      case 'send': {
        const states = await this.states(w, op.inputs);
        if (states.includes(CheckStateEnum.PENDING)) return 'pending';
        const unspent = op.inputs.filter((_, i) => states[i] === CheckStateEnum.UNSPENT);
        const restored =
          op.kind === 'swap' && unspent.length < op.inputs.length ? await this.restoreOp(w, op) : [];
        this.finish(op.id, [...unspent, ...restored]);
        return 'settled';
      }
      case 'payment': {
        const states = await this.states(w, op.inputs);
        if (states.includes(CheckStateEnum.PENDING)) return 'pending';
        if (states.some((s) => s === CheckStateEnum.SPENT)) return 'needs-server';
        // Unspent: reclaim by swapping rather than trusting the old proofs, so that a server still
        // holding the request cannot redeem them after we counted them again.
        const receiveId = randomUUID();
        this.store.update((s) => {
          s.ops = s.ops.filter((o) => o.id !== op.id);
          s.ops.push(this.opRecord({ id: receiveId, kind: 'receive', mint: op.mint, token: op.token ?? '' }));
        });
        return this.settle(this.requireOp(receiveId, 'receive'));
      }
      case 'receive': {
        if (op.counters.length) {
          const restored = await this.restoreOp(w, op);
          if (restored.length) {
            this.finish(op.id, restored);
            return 'settled';
          }
        }
        try {
          const token = await withKeysOf(w, op.token ?? '');
          const proofs = await this.withOp(op.id, () => w.receive(token));
          this.finish(
            op.id,
            proofs.map((p) => toStored(p, op.mint, this.unit)),
          );
          return 'settled';
        } catch (err) {
          if (!isDefinitive(err)) throw err;
          this.dropOp(op.id);
          if (opts.throwDefinitive) throw toWalletError(err, 'the mint refused the token');
          return 'settled';
        }
      }
      case 'mint': {
        if (op.counters.length) {
          const restored = await this.restoreOp(w, op);
          if (restored.length) {
            this.finish(op.id, restored);
            return 'settled';
          }
        }
        const q = await w.checkMintQuoteBolt11(op.quote ?? '');
        if (q.state === MintQuoteState.PAID) {
          const proofs = await this.withOp(op.id, () => w.mintProofsBolt11(op.amount ?? 0, op.quote ?? ''));
          this.finish(
            op.id,
            proofs.map((p) => toStored(p, op.mint, this.unit)),
          );
          return 'settled';
        }
        if (q.state === MintQuoteState.ISSUED || (op.expiry && this.now() / 1000 > op.expiry)) {
          this.dropOp(op.id);
          return 'settled';
        }
        return 'pending';
      }
      case 'melt': {
        const q = await w.checkMeltQuoteBolt11(op.quote ?? '');
        if (q.state === MeltQuoteState.PENDING) return 'pending';
        if (q.state === MeltQuoteState.PAID) {
          this.finish(op.id, await this.restoreOp(w, op));
          return 'settled';
        }
        const states = await this.states(w, op.inputs);
        if (states.includes(CheckStateEnum.PENDING)) return 'pending';
        this.finish(
          op.id,
          op.inputs.filter((_, i) => states[i] === CheckStateEnum.UNSPENT),
        );
        return 'settled';
      }
    }
  }

  /**
   * Proofs summing exactly to `amount`, still in the balance. When the balance has no exact
   * subset, swaps at the mint to make one; if that swap fails and overpaying is allowed, falls
   * back to the smallest selection above the amount.
   */
  private async selectExact(
    mint: string,
    amount: Amount,
    options: { allowOverpay: boolean; retried?: boolean },
  ): Promise<{ proofs: StoredProof[] }> {
    const w = await this.cashu(mint);
    const have = this.store.proofs({ mint, unit: this.unit });
    const target = amount.toNumber();
    if (sumOf(have) < target) throw new InsufficientFundsError(amount, this.balance(mint));
    const exact = this.match(have, w.selectProofsToSend(have.map(toLike), target, false, true).send);
    if (exact.length && sumOf(exact) === target) return { proofs: exact };
    const inputs = this.match(have, w.selectProofsToSend(have.map(toLike), target, false, false).send);
    if (sumOf(inputs) === target) return { proofs: inputs };
    const opId = this.newOp({ kind: 'swap', mint, inputs }, inputs);
    try {
      const res = await this.withOp(opId, () => w.send(target, inputs.map(toLike)));
      const send = res.send.map((p) => toStored(p, mint, this.unit));
      const keep = res.keep.map((p) => toStored(p, mint, this.unit));
      this.finish(opId, [...keep, ...send]);
      return { proofs: send };
    } catch (err) {
      const outcome = await this.settle(this.requireOp(opId, 'swap')).catch(() => 'pending' as const);
      if (outcome !== 'settled') throw toWalletError(err, 'the mint could not split the ecash');
      const back = new Set(inputs.map((p) => p.secret));
      const again = this.store.proofs({ mint, unit: this.unit }).filter((p) => back.has(p.secret));
      // The swap happened after all (its outputs were restored): they may hold the exact amount.
      if (!again.length && !options.retried)
        return this.selectExact(mint, amount, { ...options, retried: true });
      if (!options.allowOverpay || sumOf(again) < target)
        throw toWalletError(err, 'the mint could not split the ecash');
      return { proofs: again };
    }
  }

  /**
   * The mint of `mints` to pay from: the first that holds `amount`; throws InsufficientFundsError
   * (saying what is missing, and what other mints hold) when none does.
   */
  mintFor(mints: readonly string[], amount: Amount): string {
    let best: { mint: string; amount: Amount } | undefined;
    for (const mint of mints) {
      const have = this.balance(mint);
      if (have.gte(amount)) return mint;
      if (!best || have.value > best.amount.value) best = { mint, amount: have };
    }
    const elsewhere = this.balances()
      .filter((b) => !mints.includes(b.mint))
      .reduce((sum, b) => sum.add(b.amount), Amount.zero(this.unit));
    throw new InsufficientFundsError(amount, best?.amount ?? Amount.zero(this.unit), elsewhere, mints);
  }

  private async restoreOp(w: Wallet, op: PendingOp): Promise<StoredProof[]> {
    const proofs: Proof[] = [];
    for (const r of op.counters) {
      if (r.count === 0) continue;
      proofs.push(...(await w.restore(r.start, r.count, { keysetId: r.keysetId })).proofs);
    }
    return this.unspentUnknown(w, proofs, op.mint);
  }

  private async unspentUnknown(w: Wallet, proofs: readonly Proof[], mint: string): Promise<StoredProof[]> {
    const known = this.store.knownSecrets();
    const fresh = proofs.filter((p) => !known.has(p.secret));
    if (!fresh.length) return [];
    const states = await w.checkProofsStates(fresh);
    const seen = new Set<string>();
    return fresh
      .filter((p, i) => {
        if (states[i]?.state !== CheckStateEnum.UNSPENT || seen.has(p.secret)) return false;
        seen.add(p.secret);
        return true;
      })
      .map((p) => toStored(p, mint, this.unit));
  }

  private async states(w: Wallet, proofs: readonly StoredProof[]): Promise<CheckStateEnum[]> {
    if (!proofs.length) return [];
    const states = await w.checkProofsStates(proofs.map((p) => ({ id: p.id, secret: p.secret })));
    if (states.length !== proofs.length)
      throw new WalletOperationError('the mint answered checkstate incompletely');
    return states.map((s) => s.state);
  }

  /** Closes an operation and puts proofs into the balance, in one write. */
  private finish(opId: string, proofs: readonly StoredProof[]): void {
    const known = new Set(this.store.proofs().map((p) => p.secret));
    this.store.update((s) => {
      s.ops = s.ops.filter((o) => o.id !== opId);
      for (const p of proofs) {
        if (known.has(p.secret)) continue;
        known.add(p.secret);
        s.proofs.push(p);
      }
    });
  }

  private dropOp(opId: string): void {
    if (!this.store.op(opId)) return;
    this.store.update((s) => {
      s.ops = s.ops.filter((o) => o.id !== opId);
    });
  }

  /** Records a new operation, moving `spending` out of the balance in the same write. */
  private newOp(
    fields: Partial<PendingOp> & Pick<PendingOp, 'kind' | 'mint'>,
    spending: readonly StoredProof[] = [],
  ): string {
    const id = randomUUID();
    const gone = new Set(spending.map((p) => p.secret));
    this.store.update((s) => {
      s.proofs = s.proofs.filter((p) => !gone.has(p.secret));
      s.ops.push(this.opRecord({ id, ...fields }));
    });
    return id;
  }

  private opRecord(fields: Partial<PendingOp> & Pick<PendingOp, 'id' | 'kind' | 'mint'>): PendingOp {
    return {
      unit: this.unit,
      createdAt: new Date(this.now()).toISOString(),
      inputs: [],
      counters: [],
      ...fields,
    };
  }

  private requireOp(opId: string, kind: PendingOp['kind']): PendingOp {
    const op = this.store.op(opId);
    if (!op || op.kind !== kind) throw new WalletOperationError(`no pending ${kind} ${opId}`);
    return op;
  }

  /** The stored proofs that cashu-ts selected (it returns copies). */
  private match(have: readonly StoredProof[], picked: readonly ProofLike[]): StoredProof[] {
    const want = new Set(picked.map((p) => p.secret));
    return have.filter((p) => want.has(p.secret));
  }

  private encode(mint: string, proofs: readonly StoredProof[]): string {
    return getEncodedToken({ mint, unit: this.unit, proofs: proofs.map(toProof) });
  }

  private async withOp<T>(opId: string, run: () => Promise<T>): Promise<T> {
    this.counters.activeOp = opId;
    try {
      return await run();
    } finally {
      this.counters.activeOp = undefined;
    }
  }

  /** One wallet operation at a time: two would select the same proofs. */
  private serial<T>(run: () => Promise<T>): Promise<T> {
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private cashu(mint: string): Promise<Wallet> {
    let w = this.wallets.get(mint);
    if (!w) {
      this.seedBytes ??= this.store.seed((m) => mnemonicToSeedSync(m));
      const wallet = new Wallet(mint, {
        unit: this.unit,
        bip39seed: this.seedBytes,
        counterSource: this.counters,
      });
      w = wallet.loadMint().then(() => wallet);
      this.wallets.set(mint, w);
      w.catch(() => this.wallets.delete(mint));
    }
    return w;
  }
}

/**
 * `token` decoded, with the keys of each of its keysets loaded into the wallet: the mint's
 * `/v1/keys` lists only its active keysets, and a token of one it has rotated out (which it still
 * redeems, NUT-02) failed the wallet's DLEQ check ("Undefined key for amount …") and was never
 * received. One it cannot load (not this mint's) is left to the receive, which the mint refuses.
 */
async function withKeysOf(w: Wallet, token: string): Promise<Token> {
  const decoded = w.decodeToken(token);
  for (const id of new Set(decoded.proofs.map((p) => p.id))) {
    try {
      await w.keyChain.ensureKeysetKeys(id);
    } catch {
      // not a keyset of this mint: the receive says so
    }
  }
  return decoded;
}

function toStored(p: Proof, mint: string, unit: string): StoredProof {
  const out: StoredProof = { mint, unit, id: p.id, amount: p.amount.toNumber(), secret: p.secret, C: p.C };
  if (p.dleq) out.dleq = { e: p.dleq.e, s: p.dleq.s, ...(p.dleq.r ? { r: p.dleq.r } : {}) };
  return out;
}

function toLike(p: StoredProof): ProofLike {
  return { id: p.id, amount: p.amount, secret: p.secret, C: p.C, ...(p.dleq ? { dleq: p.dleq } : {}) };
}

function toProof(p: StoredProof): Proof {
  return { ...toLike(p), amount: CashuAmount.from(p.amount) };
}

/** A mint's answer that will not change on retry (spent, invalid, unknown keyset...), unlike a network error. */
function isDefinitive(err: unknown): boolean {
  return err instanceof MintOperationError;
}

function toWalletError(err: unknown, message: string): Error {
  if (err instanceof InsufficientFundsError || err instanceof WalletOperationError) return err;
  if (err instanceof MintOperationError)
    return new WalletOperationError(`${message}: ${err.message}`, err.code, { cause: err });
  const detail = err instanceof Error ? err.message : String(err);
  return new WalletOperationError(`${message}: ${detail}`, undefined, { cause: err });
}
