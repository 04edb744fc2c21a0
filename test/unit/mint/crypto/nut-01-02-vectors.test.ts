import { deriveKeysetId } from '@cashu/cashu-ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bytesToHex,
  deriveKeyset,
  feeForInputs,
  keysetIdV1,
  keysetIdV2,
  keysToJson,
  parseKeysetKeys,
  publicKeysOf,
} from '../../../../src/mint/crypto/index.js';
import { bulletValues, codeBlocks, readVectorFile } from './vectors.js';

describe('NUT-01 vectors: keysets from outside', () => {
  const blocks = codeBlocks(readVectorFile('01-tests.md')).filter((b) => b.lang === 'json');
  // The prose switches from "incorrect keysets that should be rejected" to "correct keysets that
  // should be accepted"; every block after such a sentence belongs to that group.
  let expectValid: boolean | undefined;
  const cases = blocks.map((b) => {
    if (/\bincorrect keysets\b/i.test(b.before)) expectValid = false;
    else if (/\bcorrect keysets\b/i.test(b.before)) expectValid = true;
    return { valid: expectValid, json: JSON.parse(b.body) as Record<string, string>, why: b.before };
  });

  it('has both kinds of vectors', () => {
    expect(cases.filter((c) => c.valid === false).length).toBe(2);
    expect(cases.filter((c) => c.valid === true).length).toBe(2);
  });

  it('rejects every incorrect keyset and accepts every correct one with exact amounts', () => {
    for (const c of cases) {
      const parsed = parseKeysetKeys(c.json);
      if (!c.valid) {
        expect(parsed, c.why).toBeUndefined();
        continue;
      }
      expect(parsed, c.why).toBeDefined();
      // Round trip: amounts up to 2^63 survive as bigint, keys as lowercase hex.
      expect(keysToJson(parsed as Map<bigint, Uint8Array>)).toEqual(c.json);
    }
    const big = cases.find((c) => c.valid && '9223372036854775808' in c.json);
    expect(parseKeysetKeys(big?.json)?.has(9223372036854775808n)).toBe(true);
  });
});

describe('NUT-02 vectors: keyset ids', () => {
  const blocks = codeBlocks(readVectorFile('02-tests.md')).filter((b) => b.lang === 'json');
  const v1 = blocks.filter((b) => b.headings.includes('Version 1'));
  const v2 = blocks.filter((b) => b.headings.includes('Version 2'));

  it('version 00 ids: every keyset hashes to its listed id (ours and cashu-ts agree)', () => {
    expect(v1.length).toBe(2);
    for (const b of v1) {
      const id = /Keyset id:\s*`([0-9a-f]+)`/.exec(b.before)?.[1];
      expect(id).toBeDefined();
      const keys = parseKeysetKeys(JSON.parse(b.body)) as Map<bigint, Uint8Array>;
      expect(keysetIdV1(keys)).toBe(id);
      expect(deriveKeysetId(JSON.parse(b.body), { versionByte: 0 })).toBe(id);
    }
  });

  it('version 01 ids: every keyset with its unit, fee and expiry hashes to its listed id', () => {
    expect(v2.length).toBe(3);
    for (const b of v2) {
      const meta = bulletValues(b.before);
      const id = meta['Keyset id'];
      expect(id).toMatch(/^01[0-9a-f]{64}$/);
      const unit = meta.Unit ?? '';
      const inputFeePpk = Number(meta['Input fee ppk'] ?? '0');
      const finalExpiry = meta['Final expiry'] === undefined ? undefined : Number(meta['Final expiry']);
      const keys = parseKeysetKeys(JSON.parse(b.body)) as Map<bigint, Uint8Array>;
      expect(keysetIdV2(keys, { unit, inputFeePpk, finalExpiry })).toBe(id);
      expect(
        deriveKeysetId(JSON.parse(b.body), {
          unit,
          input_fee_ppk: inputFeePpk,
          ...(finalExpiry === undefined ? {} : { expiry: finalExpiry }),
          versionByte: 1,
        }),
      ).toBe(id);
    }
  });
});

describe('keyset derivation', () => {
  const seed = new Uint8Array(32).fill(7);

  it('is deterministic per (seed, unit, index) and rotation changes every key', () => {
    const a = deriveKeyset({ seed, unit: 'sat', index: 0 });
    const b = deriveKeyset({ seed, unit: 'sat', index: 0 });
    const rotated = deriveKeyset({ seed, unit: 'sat', index: 1 });
    const otherUnit = deriveKeyset({ seed, unit: 'usd', index: 0 });
    expect(a.id).toBe(b.id);
    expect(keysToJson(a.keys)).toEqual(keysToJson(b.keys));
    for (const other of [rotated, otherUnit]) {
      expect(other.id).not.toBe(a.id);
      for (const [amount, pair] of other.keys) {
        expect(bytesToHex(pair.publicKey)).not.toBe(
          bytesToHex(a.keys.get(amount)?.publicKey ?? new Uint8Array()),
        );
      }
    }
  });

  it('has 64 power-of-two amounts by default, maxOrder configurable', () => {
    const ks = deriveKeyset({ seed, unit: 'sat', index: 0 });
    expect([...ks.keys.keys()]).toEqual(Array.from({ length: 64 }, (_, i) => 1n << BigInt(i)));
    const small = deriveKeyset({ seed, unit: 'sat', index: 0, maxOrder: 8 });
    expect([...small.keys.keys()].at(-1)).toBe(128n);
    expect(() => deriveKeyset({ seed, unit: 'sat', index: 0, maxOrder: 65 })).toThrow(RangeError);
    expect(() => deriveKeyset({ seed, unit: 'sat', index: 0, maxOrder: 0 })).toThrow(RangeError);
  });

  it('publishes a version 01 id that cashu-ts derives from the public data', () => {
    for (const opts of [
      { inputFeePpk: 0 },
      { inputFeePpk: 100 },
      { inputFeePpk: 250, finalExpiry: 2059210353 },
    ] as const) {
      const ks = deriveKeyset({ seed, unit: 'sat', index: 3, ...opts });
      expect(ks.id).toMatch(/^01[0-9a-f]{64}$/);
      expect(ks.inputFeePpk).toBe(opts.inputFeePpk);
      const cashuTsId = deriveKeysetId(keysToJson(ks.keys), {
        unit: 'sat',
        input_fee_ppk: opts.inputFeePpk,
        ...('finalExpiry' in opts ? { expiry: opts.finalExpiry } : {}),
      });
      expect(ks.id).toBe(cashuTsId);
    }
    const v0 = deriveKeyset({ seed, unit: 'sat', index: 0, idVersion: '00' });
    expect(v0.id).toBe(deriveKeysetId(keysToJson(v0.keys), { versionByte: 0 }));
    expect(v0.id).toBe(keysetIdV1(publicKeysOf(v0.keys)));
  });

  it('refuses bad parameters', () => {
    expect(() => deriveKeyset({ seed: new Uint8Array(16), unit: 'sat', index: 0 })).toThrow(RangeError);
    expect(() => deriveKeyset({ seed, unit: 'SAT|x', index: 0 })).toThrow(RangeError);
    expect(() => deriveKeyset({ seed, unit: 'sat', index: -1 })).toThrow(RangeError);
    expect(() => deriveKeyset({ seed, unit: 'sat', index: 0, inputFeePpk: 1.5 })).toThrow(RangeError);
  });
});

describe('NUT-02 fees', () => {
  it('charges ceil(sum of input_fee_ppk / 1000), as in the spec example', () => {
    expect(feeForInputs([100, 100, 100])).toBe(1n);
    expect(feeForInputs(Array(10).fill(100))).toBe(1n);
    expect(feeForInputs(Array(11).fill(100))).toBe(2n);
    expect(feeForInputs([0, 0])).toBe(0n);
    expect(feeForInputs([])).toBe(0n);
    expect(feeForInputs([1000, 1])).toBe(2n);
  });
});

describe('parseKeysetKeys on untrusted input', () => {
  it('never throws, and whatever it accepts round-trips', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.anything(), fc.dictionary(fc.string({ maxLength: 22 }), fc.string({ maxLength: 70 }))),
        (v) => {
          const keys = parseKeysetKeys(v);
          if (keys !== undefined) expect(keysToJson(keys)).toEqual(v);
        },
      ),
      { numRuns: 1000 },
    );
    expect(parseKeysetKeys({ '18446744073709551616': '02'.padEnd(66, '0') })).toBeUndefined();
    expect(
      parseKeysetKeys({
        '01': bytesToHex(
          deriveKeyset({ seed: new Uint8Array(32), unit: 'sat', index: 0, maxOrder: 1 }).keys.get(1n)
            ?.publicKey ?? new Uint8Array(),
        ),
      }),
    ).toBeUndefined();
    expect(parseKeysetKeys({})).toBeUndefined();
  });
});
