import { describe, expect, it } from 'vitest';
import { singleMint } from '../../../../src/rails/cashu/token-mints.js';

const proof = (n: number) => ({
  id: '009a1f293253e41e',
  amount: 1,
  secret: `s${n}`,
  C: `02${'ab'.repeat(32)}`,
});
const v3 = (token: unknown) => `cashuA${Buffer.from(JSON.stringify(token)).toString('base64url')}`;

describe('singleMint', () => {
  it('passes V4 tokens, single-entry and malformed V3 tokens through for the decoder to judge', () => {
    for (const header of [
      'cashuBo2FteCJodHRwOi8vZXZpbA',
      v3({ token: [{ mint: 'http://a', proofs: [proof(1)] }], unit: 'sat' }),
      v3({
        token: [
          { mint: 'http://a', proofs: [proof(1)] },
          { mint: 7, proofs: [] },
        ],
      }),
      v3({ token: 'nope' }),
      'cashuA!!!',
    ]) {
      expect(singleMint(header)).toEqual({ token: header });
    }
  });

  it('names the mints of a V3 token with entries of several mints', () => {
    const header = v3({
      token: [
        { mint: 'http://a', proofs: [proof(1)] },
        { mint: 'http://b', proofs: [proof(2)] },
        { mint: 'http://A/', proofs: [proof(3)] },
      ],
    });
    expect(singleMint(header)).toEqual({ mints: ['http://a', 'http://b'] });
    const many = v3({
      token: Array.from({ length: 17 }, (_, i) => ({ mint: 'http://a', proofs: [proof(i)] })),
    });
    expect(singleMint(many)).toEqual({ token: many });
  });

  it('merges entries of one mint into a single entry holding every proof', () => {
    const header = v3({
      token: [
        { mint: 'http://a', proofs: [proof(1)] },
        { mint: 'http://a/', proofs: [proof(2), proof(3)] },
      ],
      unit: 'sat',
      memo: 'm',
    });
    const merged = singleMint(header);
    if (!('token' in merged)) throw new Error('expected a token');
    const json = JSON.parse(Buffer.from(merged.token.slice(6), 'base64url').toString('utf8'));
    expect(json).toEqual({
      token: [{ mint: 'http://a', proofs: [proof(1), proof(2), proof(3)] }],
      unit: 'sat',
      memo: 'm',
    });
  });
});
