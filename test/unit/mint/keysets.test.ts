import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { MintError } from '../../../src/mint/errors.js';
import { loadOrCreateSeed } from '../../../src/mint/seed.js';
import { testStoreIsPostgres } from '../../helpers/postgres.js';
import { createTestMint, mintProofs, prepareOutputs, type TestMint, unblind } from './harness.js';

const dirs: string[] = [];
let t: TestMint | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'alacarte-mint-'));
  dirs.push(d);
  return d;
}

describe('loadOrCreateSeed', () => {
  it('creates a 32-byte seed readable only by the owner, and returns the same seed afterwards', () => {
    const path = join(tempDir(), 'sub', 'mint-seed');
    const seed = loadOrCreateSeed(path);
    expect(seed).toHaveLength(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(loadOrCreateSeed(path)).toEqual(seed);
    expect(readFileSync(path, 'utf8').trim()).toBe(Buffer.from(seed).toString('hex'));
  });

  it('refuses a seed file that is not hex, rather than minting with other keys', () => {
    const path = join(tempDir(), 'mint-seed');
    writeFileSync(path, 'not a seed\n', { mode: 0o600 });
    expect(() => loadOrCreateSeed(path)).toThrow(/not 32-64 bytes/);
  });
});

describe('keyset rotation (NUT-02)', () => {
  it('signs with the new keyset only, and still redeems the old one', async () => {
    t = await createTestMint();
    const old = t.mint.keys().keysets[0]!;
    const proofs = await mintProofs(t, [8, 2]);
    const fresh = await t.mint.rotate('sat');
    expect(fresh).not.toBe(old.id);
    expect(t.mint.keys().keysets.map((k) => k.id)).toEqual([fresh]);
    expect(t.mint.keysets().keysets).toEqual([
      expect.objectContaining({ id: old.id, active: false }),
      expect.objectContaining({ id: fresh, active: true }),
    ]);
    expect((await t.mint.keysFor(old.id)).keysets[0]!.keys).toEqual(old.keys);
    const toOld = prepareOutputs(old.id, [8, 2]).map((p) => p.output);
    const err = await t.mint.swap({ inputs: proofs, outputs: toOld }).catch((e: unknown) => e);
    expect((err as MintError).code).toBe(12002);
    const newKeys = t.mint.keys().keysets[0]!;
    const prepared = prepareOutputs(fresh, [8, 2]);
    const { signatures } = await t.mint.swap({ inputs: proofs, outputs: prepared.map((p) => p.output) });
    expect(signatures.every((s) => s.id === fresh)).toBe(true);
    const next = unblind(prepared, signatures, newKeys.keys);
    await expect(
      t.mint.swap({ inputs: next, outputs: prepareOutputs(fresh, [2, 8]).map((p) => p.output) }),
    ).resolves.toBeDefined();
  });

  it('reloads its keysets from the store after a restart, and refuses a different seed', async () => {
    const path = join(tempDir(), 'store.sqlite');
    const seed = new Uint8Array(32).fill(7);
    t = await createTestMint({ path, seed });
    await t.mint.rotate('sat');
    const before = t.mint.keysets();
    await t.close();
    t = await createTestMint({ path, seed });
    expect(t.mint.keysets()).toEqual(before);
    await t.close();
    t = undefined;
    await expect(createTestMint({ path, seed: new Uint8Array(32).fill(8) })).rejects.toThrow(/wrong seed/);
  });

  it('sees a rotation done by another process on the same store', async () => {
    const path = join(tempDir(), 'store.sqlite');
    const seed = new Uint8Array(32).fill(9);
    t = await createTestMint({ path, seed });
    const operator = await createTestMint({ path, seed });
    const fresh = await operator.mint.rotate('sat');
    await operator.close();
    t.clock.now += 10_000;
    await t.mint.refreshKeysets();
    expect(t.mint.keys().keysets.map((k) => k.id)).toEqual([fresh]);
  });
});

describe('group commit', () => {
  it('commits swaps of one event-loop turn together, each on its own: a double spend fails alone', async () => {
    t = await createTestMint();
    const keyset = t.mint.keys().keysets[0]!;
    const [a, b] = [await mintProofs(t, [4]), await mintProofs(t, [4])];
    const out = () => prepareOutputs(keyset.id, [4]).map((p) => p.output);
    await t.mint.swap({ inputs: b, outputs: out() });
    const results = await Promise.allSettled([
      t.mint.swap({ inputs: b, outputs: out() }),
      t.mint.swap({ inputs: a, outputs: out() }),
      t.mint.swap({ inputs: a, outputs: out() }),
    ]);
    const codes = results.map((r) => (r.status === 'rejected' ? (r.reason as MintError).code : 0));
    if (testStoreIsPostgres()) {
      // No group commit there (one statement per swap): which of the two racing spends of `a`
      // commits is the server's to decide, but exactly one does.
      expect(codes[0]).toBe(11001);
      expect(codes.slice(1).sort()).toEqual([0, 11001]);
      return;
    }
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'rejected']);
    expect(codes).toEqual([11001, 0, 11001]);
  });
});
