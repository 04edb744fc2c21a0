import { getEncodedToken, getTokenMetadata, MintOperationError, NetworkError } from '@cashu/cashu-ts';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS } from '../../../src/core/errors.js';
import { MintErrorCode } from '../../../src/mint/errors.js';
import { ApiError } from '../../../web/src/error-types.js';
import { checkPastedToken, explain, MINT_CODES, NODE_CODES, Sentence } from '../../../web/src/errors.js';

/** The page's status line never shows a library's wording: every error becomes a sentence. */
describe('the web page explains errors', () => {
  it('has a sentence for every error code the node can answer', () => {
    expect(Object.keys(NODE_CODES).sort()).toEqual(Object.keys(ERROR_STATUS).sort());
    for (const code of Object.keys(ERROR_STATUS)) {
      const text = explain(new ApiError(400, code, 'detail from the node'));
      expect(text).toMatch(/^[A-Z].+\.( \(detail from the node\))?$/);
    }
    expect(
      explain(new ApiError(400, 'insufficient_amount', 'the token is worth 5 sat but this costs 60 sat')),
    ).toBe(
      'The ecash was worth less than the price; nothing was spent. Top up and try again. (the token is worth 5 sat but this costs 60 sat)',
    );
  });

  it("reads mint error codes as the node's mint numbers them", () => {
    const known = new Set<number>(Object.values(MintErrorCode));
    expect(
      Object.keys(MINT_CODES)
        .map(Number)
        .filter((code) => !known.has(code)),
    ).toEqual([]);
    expect(explain(new MintOperationError(MintErrorCode.amountOutOfRange, 'too much'))).toMatch(
      /smaller one/,
    );
    expect(explain(new MintOperationError(MintErrorCode.maxInputsExceeded, 'too many'))).toMatch(
      /too many pieces/,
    );
  });

  it('turns library and network errors into sentences', () => {
    expect(explain(new MintOperationError(11001, 'Token already spent.'))).toBe(
      'This ecash was already spent: it was received before, maybe by another wallet.',
    );
    expect(explain(new MintOperationError(99999, 'weird'))).toMatch(/^The mint refused \(code 99999\)/);
    expect(explain(new NetworkError('fetch failed'))).toMatch(/^The node did not answer/);
    expect(explain(new TypeError('Failed to fetch'))).toMatch(/^The node did not answer/);
    // An exception the page did not foresee still shows no raw text.
    const raw = new DOMException("Failed to execute 'atob' on 'Window'", 'InvalidCharacterError');
    expect(explain(raw)).toBe('Something went wrong in the page; reload it and try again.');
    expect(explain(new Sentence('Choose a size first.'))).toBe('Choose a size first.');
  });

  it('checks a pasted token before it goes anywhere', () => {
    const mine = { mint: 'http://127.0.0.1:8402/mint', unit: 'sat' };
    const token = (mint: string, unit = 'sat') =>
      getEncodedToken({
        mint,
        unit,
        proofs: [{ id: '00ad268c4d1f5826', amount: 1n as never, secret: 's', C: `02${'11'.repeat(32)}` }],
      });
    const check = (t: string) => () => checkPastedToken(t, mine, getTokenMetadata);
    expect(check('hello')).toThrow('That is not a Cashu token');
    expect(check('cashuBo2F0gaJhaUgA!!!')).toThrow('That token is damaged or incomplete');
    expect(check(token('https://other.example/mint'))).toThrow(
      'That token is from another mint (https://other.example/mint); this wallet holds only ecash of http://127.0.0.1:8402/mint.',
    );
    expect(check(token(mine.mint, 'usd'))).toThrow('That token is in usd; this wallet holds sat.');
    expect(check(token(`${mine.mint}/`))).not.toThrow();
  });
});
