import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StoreCounterSource } from '../../../src/wallet/counter-source.js';
import { FileLock, WalletBusyError } from '../../../src/wallet/file-lock.js';
import type { StoredProof } from '../../../src/wallet/wallet-state.js';
import { WalletFileError, WalletStore } from '../../../src/wallet/wallet-store.js';
import { tempDir } from '../../helpers/cli.js';

const MNEMONIC =
  'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const open: WalletStore[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

function store(home: string): WalletStore {
  const s = WalletStore.open({ home, newMnemonic: () => MNEMONIC });
  open.push(s);
  return s;
}

const proof = (n: number): StoredProof => ({
  mint: 'http://127.0.0.1:1/mint',
  unit: 'sat',
  id: '00ad268c4d1f5826',
  amount: 2 ** (n % 8),
  secret: `secret-${n}`,
  C: `02${n.toString(16).padStart(64, '0')}`,
});

describe('WalletStore', () => {
  it('creates a private file with a seed phrase and reads it back', () => {
    const home = tempDir('store');
    const a = store(home);
    expect(a.created).toBe(true);
    a.update((s) => {
      s.proofs.push(proof(1), proof(2));
    });
    a.close();
    open.pop();
    const b = store(home);
    expect(b.created).toBe(false);
    expect(b.mnemonic).toBe(MNEMONIC);
    expect(b.proofs().map((p) => p.secret)).toEqual(['secret-1', 'secret-2']);
    expect(statSync(join(home, 'wallet.json')).mode & 0o777).toBe(0o600);
  });

  it('derives the seed from the phrase once and keeps it', () => {
    const home = tempDir('store');
    const s = store(home);
    let derived = 0;
    const derive = () => {
      derived++;
      return new Uint8Array(64).fill(7);
    };
    expect(s.seed(derive)).toEqual(new Uint8Array(64).fill(7));
    s.close();
    open.pop();
    expect(store(home).seed(derive)).toEqual(new Uint8Array(64).fill(7));
    expect(derived).toBe(1);
  });

  it('changes nothing, in memory or on disk, when a change fails half-way', () => {
    const home = tempDir('store');
    const s = store(home);
    s.update((d) => {
      d.proofs.push(proof(1));
    });
    const before = readFileSync(join(home, 'wallet.json'), 'utf8');
    expect(() =>
      s.update((d) => {
        d.proofs.push(proof(2));
        throw new Error('crash in the middle');
      }),
    ).toThrow('crash in the middle');
    expect(s.proofs()).toHaveLength(1);
    expect(readFileSync(join(home, 'wallet.json'), 'utf8')).toBe(before);
  });

  it('ignores a temporary file left by a crash before the rename, and leaves none itself', () => {
    const home = tempDir('store');
    const s = store(home);
    s.update((d) => {
      d.proofs.push(proof(1));
    });
    writeFileSync(join(home, '.wallet.json.999.1.tmp'), '{"version":1,"half":');
    s.close();
    open.pop();
    expect(store(home).proofs()).toHaveLength(1);
    expect(readdirSync(home).filter((f) => f.endsWith('.tmp') && !f.includes('.999.'))).toEqual([]);
  });

  it('refuses a damaged file instead of starting over (which would lose the seed and proofs)', () => {
    const home = tempDir('store');
    store(home).close();
    open.pop();
    writeFileSync(
      join(home, 'wallet.json'),
      '{"version":1,"mnemonic":"x","counters":{},"proofs":[{"amount":-1}],"ops":[]}',
    );
    expect(() => store(home)).toThrow(WalletFileError);
    writeFileSync(join(home, 'wallet.json'), '{"version":1,');
    expect(() => store(home)).toThrow(WalletFileError);
    // The lock is released after a failed open.
    expect(existsSync(join(home, 'wallet.lock'))).toBe(false);
  });

  it('keeps a second process out, and takes over the lock of a dead one', () => {
    const home = tempDir('store');
    store(home);
    const held = readFileSync(join(home, 'wallet.lock'), 'utf8');
    expect(Number(held)).toBe(process.pid);
    // Another live process holds it.
    writeFileSync(join(home, 'other.lock'), '1');
    expect(() => FileLock.acquire(join(home, 'other.lock'), () => true)).toThrow(WalletBusyError);
    // Its holder died (kill -9): taken over.
    const lock = FileLock.acquire(join(home, 'other.lock'), () => false);
    expect(readFileSync(join(home, 'other.lock'), 'utf8')).toBe(String(process.pid));
    lock.release();
    expect(existsSync(join(home, 'other.lock'))).toBe(false);
  });

  it('waits a while for a live holder, then gives up with WalletBusyError', () => {
    const home = tempDir('store');
    const path = join(home, 'w.lock');
    writeFileSync(path, '1');
    expect(() => FileLock.acquireWaiting(path, 120, () => true)).toThrow(WalletBusyError);
    let checks = 0;
    const lock = FileLock.acquireWaiting(path, 10_000, () => ++checks < 3);
    expect(checks).toBe(3);
    lock.release();
  });

  it('persists each counter reservation before handing it out, recorded on the active operation', async () => {
    const home = tempDir('store');
    const s = store(home);
    s.update((d) => {
      d.ops.push({
        id: 'op1',
        kind: 'swap',
        mint: 'm',
        unit: 'sat',
        createdAt: '',
        inputs: [],
        counters: [],
      });
    });
    const counters = new StoreCounterSource(s);
    counters.activeOp = 'op1';
    expect(await counters.reserve('ks', 3)).toEqual({ start: 0, count: 3 });
    expect(await counters.reserve('ks', 2)).toEqual({ start: 3, count: 2 });
    counters.activeOp = undefined;
    expect(await counters.reserve('ks', 0)).toEqual({ start: 5, count: 0 });
    await expect(counters.reserveAt('ks', 4, 1)).rejects.toThrow('already used');
    expect(await counters.reserveAt('ks', 10, 2)).toEqual({ start: 10, count: 2 });
    await counters.advanceToAtLeast('ks', 7);
    const onDisk = JSON.parse(readFileSync(join(home, 'wallet.json'), 'utf8'));
    expect(onDisk.counters).toEqual({ ks: 12 });
    expect(onDisk.ops[0].counters).toEqual([
      { keysetId: 'ks', start: 0, count: 3 },
      { keysetId: 'ks', start: 3, count: 2 },
    ]);
  });
});
