import {
  Amount,
  getDecodedToken,
  getEncodedToken,
  getTokenMetadata,
  Mint,
  MintQuoteState,
  type Proof,
  type ProofLike,
  Wallet,
} from '@cashu/cashu-ts';
import { checkPastedToken, Sentence } from './errors.js';

/** Where the wallet keeps its proofs: the page's localStorage (the Web Storage API's two calls used). */
export interface WalletStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** A proof as kept in localStorage: JSON has no bigint, so the amount is a decimal string. */
type StoredProof = Omit<Proof, 'amount'> & { amount: string };

/** Tokens handed to the node whose answer is not in yet: what the page must recover after a crash. */
export type Pending =
  /** Creation is idempotent per token (API.md): replaying it gets the lease, or the token back. */
  | {
      kind: 'rent';
      token: string;
      request: { offer: string; seconds: number; image: string; ports?: number[] };
    }
  | { kind: 'extend'; token: string; request: { id: string; seconds: number } }
  /** Change or a refund from the node, kept until it is swapped into the wallet. */
  | { kind: 'receive'; token: string };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface Invoice {
  quote: string;
  request: string;
  amount: number;
}

/**
 * The browser's ecash: cashu-ts against the node's mint, proofs in localStorage. Every change is
 * written before the promise that made it resolves, and operations run one at a time, so two
 * clicks never spend the same proof twice.
 */
export class BrowserWallet {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly wallet: Wallet,
    /** The mint URL tokens name: the node accepts only its listed mints. */
    readonly mintUrl: string,
    readonly unit: string,
    private readonly storage: WalletStorage,
    private readonly onChange: (balance: number) => void,
  ) {}

  static async open(options: {
    mintUrl: string;
    unit: string;
    storage: WalletStorage;
    origin: string;
    onChange: (balance: number) => void;
  }): Promise<BrowserWallet> {
    // The page only talks to its own origin (CSP connect-src 'self'); a node whose public URL is
    // another name for it is still reached here, while tokens keep naming the listed mint URL.
    const listed = new URL(options.mintUrl);
    const transport =
      listed.origin === options.origin ? options.mintUrl : `${options.origin}${listed.pathname}`;
    const wallet = new Wallet(new Mint(transport.replace(/\/+$/, '')), { unit: options.unit });
    await wallet.loadMint();
    return new BrowserWallet(wallet, options.mintUrl, options.unit, options.storage, options.onChange);
  }

  private get key(): string {
    return `alacarte.wallet.v1:${this.mintUrl}:${this.unit}`;
  }

  proofs(): StoredProof[] {
    try {
      const parsed: unknown = JSON.parse(this.storage.getItem(this.key) ?? '[]');
      return Array.isArray(parsed) ? (parsed as StoredProof[]) : [];
    } catch {
      return [];
    }
  }

  balance(): number {
    return this.proofs().reduce((n, p) => n + Number(p.amount), 0);
  }

  private save(proofs: ReadonlyArray<Proof | ProofLike | StoredProof>): void {
    const stored = proofs.map((p) => ({ ...p, amount: String(Amount.from(p.amount).toBigInt()) }));
    this.storage.setItem(this.key, JSON.stringify(stored));
    this.onChange(this.balance());
  }

  private add(proofs: ReadonlyArray<Proof | ProofLike>): void {
    this.save([...this.proofs(), ...proofs]);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** A Lightning invoice of the node's mint for `amount`. */
  async invoice(amount: number): Promise<Invoice> {
    const q = await this.wallet.createMintQuoteBolt11(amount);
    return { quote: q.quote, request: q.request, amount };
  }

  /** Polls the mint until the invoice is paid, then mints its ecash into the wallet. */
  async mintWhenPaid(invoice: Invoice, signal: AbortSignal, intervalMs = 1000): Promise<number> {
    for (;;) {
      if (signal.aborted) throw new Sentence('Stopped waiting for the payment.');
      const q = await this.wallet.checkMintQuoteBolt11(invoice.quote);
      if (q.state === MintQuoteState.PAID) break;
      if (q.state === MintQuoteState.ISSUED) throw new Sentence('This invoice was already redeemed.');
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    return this.exclusive(async () => {
      const proofs = await this.wallet.mintProofsBolt11(invoice.amount, invoice.quote);
      this.add(proofs);
      return invoice.amount;
    });
  }

  /**
   * Takes a token into the wallet (swapped at the mint, so whoever sent it can't spend it again).
   * With `keep`, the token is recorded as pending first, so ecash the node handed over survives a
   * crash or a lost connection (the page retries it on its next load).
   */
  receive(token: string, keep = false): Promise<number> {
    if (keep) this.setPending([...this.pending(), { kind: 'receive', token }]);
    return this.exclusive(async () => {
      // Mint and unit first, from the token alone: decoding the proofs needs the mint's keysets,
      // and another mint's token would fail there with a library message.
      checkPastedToken(token.trim(), { mint: this.mintUrl, unit: this.unit }, getTokenMetadata);
      let decoded: ReturnType<typeof getDecodedToken>;
      try {
        decoded = getDecodedToken(token.trim(), this.wallet.keyChain.getAllKeysetIds());
      } catch {
        throw new Sentence(
          'That token names this mint but holds ecash of keysets the mint does not know: it was not made by this mint.',
        );
      }
      // The mint's /v1/keys lists its active keysets only: ecash of one it has rotated out (which
      // it still redeems) failed the DLEQ check without that keyset's keys.
      for (const id of new Set(decoded.proofs.map((p) => p.id)))
        await this.wallet.keyChain.ensureKeysetKeys(id).catch(() => undefined);
      const proofs = await this.wallet.receive(decoded.proofs);
      this.add(proofs);
      if (keep) this.settle(token);
      return proofs.reduce((n, p) => n + p.amount.toNumber(), 0);
    });
  }

  /**
   * A token worth exactly `amount` (split at the mint when needed); if the split fails, a token of
   * whole proofs worth a little more, whose change the node returns. The token is recorded as
   * pending until `settle` is called with the node's answer.
   */
  pay(
    amount: number,
    pending: DistributiveOmit<Exclude<Pending, { kind: 'receive' }>, 'token'>,
  ): Promise<{ token: string; value: number }> {
    return this.exclusive(async () => {
      const proofs = this.proofs();
      if (this.balance() < amount)
        throw new Sentence(`Not enough ecash: ${amount} ${this.unit} needed. Top up first.`);
      let send: ReadonlyArray<Proof | ProofLike | StoredProof>;
      let keep: ReadonlyArray<Proof | ProofLike | StoredProof>;
      try {
        ({ send, keep } = await this.wallet.send(amount, proofs));
      } catch {
        ({ send, keep } = overpay(proofs, amount));
      }
      const token = this.encode(send);
      // Pending first, then the smaller wallet: a crash in between leaves the ecash in both, never in neither.
      this.setPending([...this.pending(), { ...pending, token } as Pending]);
      this.save(keep);
      return { token, value: send.reduce((n, p) => n + Number(Amount.from(p.amount).toBigInt()), 0) };
    });
  }

  pending(): Pending[] {
    try {
      const parsed: unknown = JSON.parse(this.storage.getItem(`${this.key}:pending`) ?? '[]');
      return Array.isArray(parsed) ? (parsed as Pending[]) : [];
    } catch {
      return [];
    }
  }

  private setPending(list: Pending[]): void {
    this.storage.setItem(`${this.key}:pending`, JSON.stringify(list));
  }

  /** The node has the token (or refused it and it was taken back): forget it. */
  settle(token: string): void {
    this.setPending(this.pending().filter((p) => p.token !== token));
  }

  /** All the wallet's ecash as one token: the whole backup, in a form any Cashu wallet takes. */
  backup(): string {
    const proofs = this.proofs().map((p) => ({ ...p, amount: Amount.from(p.amount) }));
    return this.encode(proofs);
  }

  private encode(proofs: ReadonlyArray<Proof | ProofLike | StoredProof>): string {
    return getEncodedToken({
      mint: this.mintUrl,
      unit: this.unit,
      proofs: proofs.map((p) => ({ ...p, amount: Amount.from(p.amount) })),
    });
  }
}

/** Whole proofs, largest first, until they cover `amount`. */
function overpay(proofs: StoredProof[], amount: number): { send: StoredProof[]; keep: StoredProof[] } {
  const sorted = [...proofs].sort((a, b) => Number(b.amount) - Number(a.amount));
  const send: StoredProof[] = [];
  let sum = 0;
  for (const p of sorted) {
    if (sum >= amount) break;
    send.push(p);
    sum += Number(p.amount);
  }
  const sent = new Set(send.map((p) => p.secret));
  return { send, keep: proofs.filter((p) => !sent.has(p.secret)) };
}
