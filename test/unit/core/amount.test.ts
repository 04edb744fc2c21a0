import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Amount, U64_MAX } from '../../../src/core/amount.js';

describe('Amount', () => {
  it('adds and subtracts within one unit', () => {
    const a = Amount.of(120n).add(Amount.of(8));
    expect(a.value).toBe(128n);
    expect(a.sub(Amount.of(28)).value).toBe(100n);
  });

  it('refuses negative results, overflow and mixed units', () => {
    expect(() => Amount.of(1).sub(Amount.of(2))).toThrow(RangeError);
    expect(() => Amount.of(U64_MAX).add(Amount.of(1))).toThrow(RangeError);
    expect(() => Amount.of(1, 'sat').add(Amount.of(1, 'usd'))).toThrow(TypeError);
    expect(() => Amount.of(1.5)).toThrow(RangeError);
  });

  it('parses only whole non-negative amounts within u64 from untrusted input', () => {
    expect(Amount.parse(64)?.value).toBe(64n);
    expect(Amount.parse('18446744073709551615')?.value).toBe(U64_MAX);
    for (const bad of [-1, 1.5, '18446744073709551616', '01', '1e3', '', null, {}, [], Number.NaN, 2 ** 60]) {
      expect(Amount.parse(bad)).toBeUndefined();
    }
  });

  it('never accepts anything parse rejects, whatever the input', () => {
    fc.assert(
      fc.property(fc.anything(), (input) => {
        const a = Amount.parse(input);
        if (a) expect(a.value >= 0n && a.value <= U64_MAX).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
