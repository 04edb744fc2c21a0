import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { readFileIfExists, writeFileAtomic } from './atomic-file.js';
import { FileLock } from './file-lock.js';
import {
  type CounterRange,
  type PendingOp,
  type StoredProof,
  type WalletFile,
  walletFileSchema,
} from './wallet-state.js';

export class WalletFileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WalletFileError';
  }
}

export interface WalletStoreOptions {
  /** Directory holding wallet.json and its lock ($ALACARTE_HOME). */
  home: string;
  /** Called once when no wallet file exists yet: the seed phrase of the new wallet. */
  newMnemonic: () => string;
  /** How long to wait for another process holding the wallet (default 0: fail at once). */
  lockWaitMs?: number;
}

/**
 * The wallet's durable state: one JSON file (mode 0600) rewritten atomically on every change, so a
 * crash leaves either the state before a change or the state after it. Callers change state only
 * through `update`, which writes before it returns: whatever must survive a crash is on disk before
 * the next step (sending proofs, creating outputs) happens.
 */
export class WalletStore {
  private constructor(
    readonly path: string,
    private state: WalletFile,
    private readonly lock: FileLock,
    readonly created: boolean,
  ) {}

  static open(options: WalletStoreOptions): WalletStore {
    mkdirSync(options.home, { recursive: true, mode: 0o700 });
    const path = join(options.home, 'wallet.json');
    const lock = FileLock.acquireWaiting(join(options.home, 'wallet.lock'), options.lockWaitMs ?? 0);
    try {
      const text = readFileIfExists(path);
      if (text === undefined) {
        const state: WalletFile = {
          version: 1,
          mnemonic: options.newMnemonic(),
          counters: {},
          proofs: [],
          ops: [],
        };
        writeFileAtomic(path, serialize(state));
        return new WalletStore(path, state, lock, true);
      }
      chmodSync(path, 0o600);
      return new WalletStore(path, parse(text, path), lock, false);
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  close(): void {
    this.lock.release();
  }

  get mnemonic(): string {
    return this.state.mnemonic;
  }

  /** The 64-byte BIP-39 seed, derived from the mnemonic once and then kept in the file. */
  seed(derive: (mnemonic: string) => Uint8Array): Uint8Array {
    if (this.state.seed) return new Uint8Array(Buffer.from(this.state.seed, 'hex'));
    const seed = derive(this.state.mnemonic);
    this.update((s) => {
      s.seed = Buffer.from(seed).toString('hex');
    });
    return seed;
  }

  proofs(filter?: { mint?: string; unit?: string }): readonly StoredProof[] {
    return this.state.proofs.filter(
      (p) =>
        (filter?.mint === undefined || p.mint === filter.mint) &&
        (filter?.unit === undefined || p.unit === filter.unit),
    );
  }

  ops(): readonly PendingOp[] {
    return this.state.ops;
  }

  op(id: string): PendingOp | undefined {
    return this.state.ops.find((o) => o.id === id);
  }

  nextCounter(keysetId: string): number {
    return this.state.counters[keysetId] ?? 0;
  }

  counterSnapshot(): Record<string, number> {
    return { ...this.state.counters };
  }

  /** Every secret the wallet holds anywhere (balance or pending), to tell restored proofs we know. */
  knownSecrets(): Set<string> {
    const out = new Set(this.state.proofs.map((p) => p.secret));
    for (const op of this.state.ops) for (const p of op.inputs) out.add(p.secret);
    return out;
  }

  /** Applies a change to a copy of the state and persists it; the change is visible only once written. */
  update(change: (draft: WalletFile) => void): void {
    const draft = structuredClone(this.state);
    change(draft);
    const text = serialize(draft);
    writeFileAtomic(this.path, text);
    this.state = draft;
  }

  /**
   * Hands out `count` NUT-13 counters for a keyset, persisting the new cursor (and, when an
   * operation is named, the range it took) before the caller may derive any secret from them.
   */
  reserveCounters(keysetId: string, count: number, opId: string | undefined): CounterRange {
    const start = this.nextCounter(keysetId);
    if (count === 0) return { keysetId, start, count };
    const range = { keysetId, start, count };
    this.update((s) => {
      s.counters[keysetId] = start + count;
      const op = opId === undefined ? undefined : s.ops.find((o) => o.id === opId);
      op?.counters.push(range);
    });
    return range;
  }

  advanceCounter(keysetId: string, minNext: number): void {
    if (this.nextCounter(keysetId) >= minNext) return;
    this.update((s) => {
      s.counters[keysetId] = minNext;
    });
  }
}

function serialize(state: WalletFile): string {
  return `${JSON.stringify(state, null, 1)}\n`;
}

function parse(text: string, path: string): WalletFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new WalletFileError(`wallet file ${path} is not valid JSON`, { cause: err });
  }
  const result = walletFileSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new WalletFileError(
      `wallet file ${path} is damaged (${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'})`,
    );
  }
  return result.data;
}
