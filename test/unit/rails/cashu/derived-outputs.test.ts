import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bearableFee } from '../../../../src/core/input-fees.js';
import { NodeSecret } from '../../../../src/leases/node-secret.js';
import {
  blindMessage,
  bytesToHex,
  hexToBytes,
  publicKeyOf,
  signBlinded,
  unblindSignature,
  verifyProof,
} from '../../../../src/mint/crypto/index.js';
import {
  blindedMessages,
  denominations,
  deriveOutputs,
  splitPayment,
} from '../../../../src/rails/cashu/derived-outputs.js';

const secretA = NodeSecret.fromBytes(new Uint8Array(32).fill(7));
const secretB = NodeSecret.fromBytes(new Uint8Array(32).fill(8));
const encoder = new TextEncoder();
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

describe('denominations', () => {
  it('splits an amount into distinct powers of two, smallest first', () => {
    expect(denominations(0n)).toEqual([]);
    expect(denominations(1n)).toEqual([1]);
    expect(denominations(120n)).toEqual([8, 16, 32, 64]);
    expect(denominations(127n)).toEqual([1, 2, 4, 8, 16, 32, 64]);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
        const parts = denominations(BigInt(n));
        expect(sum(parts)).toBe(n);
        expect(new Set(parts).size).toBe(parts.length);
        for (const p of parts) expect(Number.isInteger(Math.log2(p))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('splitPayment', () => {
  it('keeps the price, leaves the fee to the mint and returns the rest', () => {
    expect(splitPayment(128n, 0n, 120n, 4)).toEqual({ keep: 120n, change: 8n });
    expect(splitPayment(130n, 2n, 120n, 4)).toEqual({ keep: 120n, change: 8n });
    expect(splitPayment(122n, 2n, 120n, 4)).toEqual({ keep: 120n, change: 0n });
  });

  it('takes a token worth the price (NUT-24): the node bears the fee the overpayment does not cover', () => {
    expect(splitPayment(121n, 2n, 120n, 4)).toEqual({ keep: 119n, change: 0n });
    expect(splitPayment(120n, 2n, 120n, 4)).toEqual({ keep: 118n, change: 0n });
  });

  it('refuses a payment worth less than the price', () => {
    expect(splitPayment(119n, 0n, 120n, 4)).toBeUndefined();
  });

  it('always adds up', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 1n << 60n }),
        fc.bigInt({ min: 0n, max: 1000n }),
        fc.bigInt({ min: 1n, max: 1n << 60n }),
        fc.integer({ min: 1, max: 1000 }),
        (amount, fee, price, inputs) => {
          const split = splitPayment(amount, fee, price, inputs);
          const absorbed = fee > amount - price ? fee - (amount - price) : 0n;
          if (amount < price || fee > amount || absorbed > bearableFee(fee, price, inputs))
            expect(split).toBeUndefined();
          else {
            expect(split && split.keep + split.change + fee).toBe(amount);
            expect(split && split.keep <= price && split.keep >= 0n && split.change >= 0n).toBe(true);
          }
        },
      ),
    );
  });
});

describe('deriveOutputs', () => {
  it('derives the same outputs again for the same node secret, label and amount', () => {
    const first = deriveOutputs(secretA, 'change/abc', 200n);
    const again = deriveOutputs(secretA, 'change/abc', 200n);
    expect(again).toEqual(first);
    expect(first.map((o) => o.amount)).toEqual([8, 64, 128]);
    for (const o of first) expect(o.secret).toMatch(/^[0-9a-f]{64}$/);
  });

  it('gives unrelated outputs for another label, another node or another denomination', () => {
    const all = [
      ...deriveOutputs(secretA, 'change/abc', 255n),
      ...deriveOutputs(secretA, 'keep/abc', 255n),
      ...deriveOutputs(secretA, 'change/abd', 255n),
      ...deriveOutputs(secretB, 'change/abc', 255n),
    ];
    expect(new Set(all.map((o) => o.secret)).size).toBe(all.length);
    expect(new Set(all.map((o) => o.B_)).size).toBe(all.length);
    expect(new Set(all.map((o) => bytesToHex(o.r))).size).toBe(all.length);
  });

  it('keeps an output the same when only other denominations change (a retry at another price)', () => {
    const a = deriveOutputs(secretA, 'keep/k', 0b1010n);
    const b = deriveOutputs(secretA, 'keep/k', 0b0010n);
    expect(b[0]).toEqual(a[0]);
  });

  it('blinds so that an unblinded mint signature is a valid proof of the derived secret', () => {
    const k = hexToBytes('7f'.repeat(32));
    if (!k) throw new Error('bad key');
    const A = publicKeyOf(k);
    for (const o of deriveOutputs(secretA, 'refund/lse_x', 77n)) {
      expect(o.B_).toBe(bytesToHex(blindMessage(encoder.encode(o.secret), o.r)));
      const B_ = hexToBytes(o.B_);
      if (!B_) throw new Error('bad point');
      const C = unblindSignature(signBlinded(k, B_), o.r, A);
      expect(verifyProof(k, encoder.encode(o.secret), C)).toBe(true);
    }
  });

  it('puts the keyset id on the wire form only', () => {
    const outputs = deriveOutputs(secretA, 'keep/x', 3n);
    expect(blindedMessages(outputs, '00aabbccddeeff00')).toEqual(
      outputs.map((o) => ({ amount: o.amount, id: '00aabbccddeeff00', B_: o.B_ })),
    );
  });
});
