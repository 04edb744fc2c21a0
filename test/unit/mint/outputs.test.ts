import { describe, expect, it } from 'vitest';
import type { LoadedKeyset } from '../../../src/mint/keyset-registry.js';
import { type CheckedOutput, imprintChange } from '../../../src/mint/outputs.js';

const keyset = { id: 'k', maxOrder: 32 } as LoadedKeyset;
const blanks = (n: number): CheckedOutput[] =>
  Array.from({ length: n }, (_, i) => ({ keyset, amount: 0, B_: `b${i}`, point: new Uint8Array(33) }));

describe('NUT-08 change imprinting', () => {
  it('splits the overpaid fee into powers of two, ascending, in the order of the blanks', () => {
    const change = imprintChange(blanks(10), 900n);
    expect(change.map((c) => c.amount)).toEqual([4, 128, 256, 512]);
    expect(change.map((c) => c.B_)).toEqual(['b0', 'b1', 'b2', 'b3']);
  });

  it('returns nothing without change or without blanks', () => {
    expect(imprintChange(blanks(3), 0n)).toEqual([]);
    expect(imprintChange([], 5n)).toEqual([]);
  });

  it('keeps the largest pieces when the wallet sent too few blanks', () => {
    expect(imprintChange(blanks(2), 7n).map((c) => c.amount)).toEqual([2, 4]);
  });

  it('never imprints more than the change, and never a denomination the keyset lacks', () => {
    for (const change of [1n, 2n, 3n, 1000n, 2n ** 31n, 2n ** 33n + 5n]) {
      const pieces = imprintChange(blanks(64), change).map((c) => BigInt(c.amount));
      expect(pieces.reduce((a, b) => a + b, 0n)).toBe(change);
      expect(pieces.every((p) => p <= 2n ** 31n)).toBe(true);
    }
  });
});
