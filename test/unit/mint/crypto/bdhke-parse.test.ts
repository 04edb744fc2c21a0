import { pointFromHex as ctsPointFromHex } from '@cashu/cashu-ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bytesToHex,
  CURVE_ORDER,
  createDleq,
  hexToBytes,
  parsePoint,
  parseScalar,
  publicKeyOf,
  signBlinded,
  verifyDleq,
} from '../../../../src/mint/crypto/index.js';
import { secp } from '../../../../src/mint/crypto/native.js';

const scalar = fc.uint8Array({ minLength: 32, maxLength: 32 }).filter((b) => secp.privateKeyVerify(b));
const validPointHex = scalar.map((k) => bytesToHex(publicKeyOf(k)));
const hexChars = fc.constantFrom(...'0123456789abcdefABCDEF'.split(''));
const nobleAccepts = (hex: string) => {
  try {
    ctsPointFromHex(hex);
    return true;
  } catch {
    return false;
  }
};

describe('parsePoint on untrusted input', () => {
  it('never throws and accepts only 33-byte compressed points, on arbitrary strings', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: hexChars, maxLength: 140 })),
        (s) => {
          const p = parsePoint(s);
          if (p !== undefined) {
            expect(p.length).toBe(33);
            expect(s.length).toBe(66);
            expect(secp.publicKeyVerify(p)).toBe(true);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('agrees with cashu-ts on every 02/03-prefixed 66-hex string (on-curve or not)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('02', '03'),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (prefix, x) => {
          const hex = prefix + bytesToHex(x);
          expect(parsePoint(hex) !== undefined).toBe(nobleAccepts(hex));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('accepts real points in either hex case and rejects any corruption of them', () => {
    fc.assert(
      fc.property(validPointHex, fc.nat(), hexChars, (hex, pos, ch) => {
        expect(parsePoint(hex)).toEqual(hexToBytes(hex));
        expect(parsePoint(hex.toUpperCase())).toEqual(hexToBytes(hex));
        expect(parsePoint(hex.slice(0, 64))).toBeUndefined();
        expect(parsePoint(`${hex}00`)).toBeUndefined();
        expect(parsePoint(`04${hex.slice(2)}`)).toBeUndefined();
        expect(parsePoint(`00${hex.slice(2)}`)).toBeUndefined();
        expect(parsePoint(` ${hex.slice(1)}`)).toBeUndefined();
        const i = pos % 66;
        expect(parsePoint(`${hex.slice(0, i)}g${hex.slice(i + 1)}`)).toBeUndefined();
        // A changed x digit either lands on another valid point or off the curve; never throws.
        const changed = `${hex.slice(0, Math.max(2, i))}${ch}${hex.slice(Math.max(2, i) + 1)}`;
        expect(parsePoint(changed) !== undefined).toBe(nobleAccepts(changed));
      }),
      { numRuns: 300 },
    );
  });

  it('rejects x >= p, uncompressed keys, non-strings', () => {
    expect(parsePoint(`02${'ff'.repeat(32)}`)).toBeUndefined();
    expect(
      parsePoint(
        bytesToHex(
          secp.publicKeyCreate(
            Uint8Array.from({ length: 32 }, () => 1),
            false,
          ),
        ),
      ),
    ).toBeUndefined();
    for (const v of [undefined, null, 42, {}, ['02']])
      expect(parsePoint(v as unknown as string)).toBeUndefined();
  });
});

describe('parseScalar', () => {
  it('accepts exactly 0 < k < n as 64 hex characters', () => {
    expect(parseScalar('00'.repeat(32))).toBeUndefined();
    expect(parseScalar(CURVE_ORDER.toString(16))).toBeUndefined();
    expect(parseScalar((CURVE_ORDER - 1n).toString(16))?.length).toBe(32);
    expect(parseScalar(`${'00'.repeat(31)}01`)?.length).toBe(32);
    expect(parseScalar('01')).toBeUndefined();
    fc.assert(
      fc.property(fc.string({ maxLength: 70 }), (s) => {
        const k = parseScalar(s);
        if (k !== undefined) expect(secp.privateKeyVerify(k)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('DLEQ edge cases', () => {
  const k = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
  const B_ = publicKeyOf(Uint8Array.from({ length: 32 }, () => 9));
  const C_ = signBlinded(k, B_);
  const A = publicKeyOf(k);
  const { e, s } = createDleq(k, B_, C_);

  it('verifyDleq returns false (never throws) on out-of-range scalars and malformed points', () => {
    const n = Buffer.from(CURVE_ORDER.toString(16), 'hex');
    expect(verifyDleq(A, B_, C_, e, s)).toBe(true);
    expect(verifyDleq(A, B_, C_, e, new Uint8Array(32))).toBe(false);
    expect(verifyDleq(A, B_, C_, e, n)).toBe(false);
    expect(verifyDleq(A, B_, C_, new Uint8Array(32), s)).toBe(false);
    expect(verifyDleq(A, B_, C_, n, s)).toBe(false);
    expect(verifyDleq(A, B_, C_, e.subarray(1), s)).toBe(false);
    expect(verifyDleq(new Uint8Array(33), B_, C_, e, s)).toBe(false);
    expect(verifyDleq(A, new Uint8Array(33).fill(2), C_, e, s)).toBe(false);
    // e = s with A = G and B_ = C_ makes R1 = R2 = infinity: must be refused, not crash.
    const G = publicKeyOf(Uint8Array.from({ length: 32 }, (_, i) => (i === 31 ? 1 : 0)));
    expect(verifyDleq(G, B_, B_, s, s)).toBe(false);
  });

  it('createDleq refuses a zero or out-of-range explicit nonce', () => {
    expect(() => createDleq(k, B_, C_, new Uint8Array(32))).toThrow(RangeError);
    expect(() => createDleq(k, B_, C_, new Uint8Array(32).fill(0xff))).toThrow(RangeError);
  });
});
