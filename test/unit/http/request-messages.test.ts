import { describe, expect, it } from 'vitest';
import { AlacarteError } from '../../../src/core/errors.js';
import {
  bearerOf,
  createLeaseBody,
  execBody,
  parseWith,
  quoteQuery,
} from '../../../src/http/lease-schemas.js';

/** The `{error, message}` a client is answered for a body or query the schema refuses. */
function refusal(schema: Parameters<typeof parseWith>[0], input: unknown) {
  try {
    parseWith(schema, input);
  } catch (e) {
    expect(e).toBeInstanceOf(AlacarteError);
    return { error: (e as AlacarteError).code, message: (e as AlacarteError).message };
  }
  throw new Error('accepted');
}

describe('messages of refused requests', () => {
  it('name a missing field as required, not as a type error about undefined', () => {
    expect(refusal(createLeaseBody, { offer: 'small', seconds: 600 })).toEqual({
      error: 'invalid_request',
      message: 'image: required',
    });
    expect(refusal(quoteQuery, { seconds: '60' })).toEqual({
      error: 'invalid_request',
      message: 'offer: required',
    });
    expect(refusal(execBody, {})).toEqual({ error: 'invalid_request', message: 'command: required' });
  });

  it('keep saying what was wrong with a field that is there', () => {
    const wrongType = refusal(createLeaseBody, { offer: 5, seconds: 600, image: 'busybox' });
    expect(wrongType.message).toMatch(/^offer: /);
    expect(wrongType.message).not.toContain('required');
  });

  it('say what a quote’s seconds must be without repeating the field', () => {
    expect(refusal(quoteQuery, { offer: 'small', seconds: '-1' })).toEqual({
      error: 'invalid_request',
      message: 'seconds: a whole number of seconds, e.g. 3600',
    });
  });
});

describe('bearerOf', () => {
  it('takes the scheme in any case and spaces or tabs after it (RFC 9110 §11.4)', () => {
    for (const header of ['Bearer abc.def', 'bearer abc.def', 'BEARER abc.def', 'Bearer \tabc.def'])
      expect(bearerOf(header), header).toBe('abc.def');
    for (const header of ['Bearerabc', 'Basic abc', 'Bearer a b', 'Bearer ', undefined, ['Bearer a']])
      expect(bearerOf(header as string | undefined), String(header)).toBeUndefined();
  });
});
