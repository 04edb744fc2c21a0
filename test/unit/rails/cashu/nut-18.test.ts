import { decodePaymentRequest } from '@cashu/cashu-ts';
import { describe, expect, it } from 'vitest';
import { Amount } from '../../../../src/core/amount.js';
import { encodePaymentRequest } from '../../../../src/rails/cashu/nut-18.js';
import { codeBlocks, readVectorFile } from '../../../helpers/vectors.js';

describe('NUT-18 payment requests', () => {
  it('encode what a third-party wallet decodes to the same request', () => {
    const encoded = encodePaymentRequest({
      id: 'b7a90176',
      amount: Amount.of(120),
      mints: ['http://127.0.0.1:8402/mint', 'https://mint.example.com'],
      description: 'alacarte lease',
    });
    expect(encoded.startsWith('creqA')).toBe(true);
    const decoded = decodePaymentRequest(encoded);
    expect(decoded.id).toBe('b7a90176');
    expect(Number(decoded.amount)).toBe(120);
    expect(decoded.unit).toBe('sat');
    expect(decoded.mints).toEqual(['http://127.0.0.1:8402/mint', 'https://mint.example.com']);
    expect(decoded.description).toBe('alacarte lease');
    expect(decoded.transport ?? []).toEqual([]);
  });

  it('encodes large amounts with the right CBOR width', () => {
    for (const a of [0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32, 2 ** 40]) {
      const decoded = decodePaymentRequest(encodePaymentRequest({ amount: Amount.of(a), mints: [] }));
      expect(Number(decoded.amount)).toBe(a);
    }
  });

  it('agrees with every NUT-18 vector on the fields alacarte uses', () => {
    const blocks = codeBlocks(readVectorFile('18-tests.md'));
    const encodedVectors = blocks.filter((b) => b.body.startsWith('creqA'));
    expect(encodedVectors.length).toBeGreaterThanOrEqual(5);
    for (const { body } of encodedVectors) {
      const reference = decodePaymentRequest(body);
      if (reference.amount === undefined) continue; // an amountless request is not a price challenge
      const ours = decodePaymentRequest(
        encodePaymentRequest({
          id: reference.id,
          amount: Amount.of(BigInt(reference.amount.toString()), reference.unit),
          mints: reference.mints ?? [],
          description: reference.description,
          singleUse: reference.singleUse,
        }),
      );
      expect(ours.id).toBe(reference.id);
      expect(ours.amount?.toString()).toBe(reference.amount.toString());
      expect(ours.unit).toBe(reference.unit);
      expect(ours.mints).toEqual(reference.mints);
      expect(ours.description).toBe(reference.description);
    }
  });
});
