import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkSpendingConditions,
  DEFAULT_SECRET_LIMITS,
  mayCarryConditions,
  parseWellKnownSecret,
  parseWitness,
} from '../../../../src/mint/conditions/index.js';

const hexChar = fc.constantFrom(...'0123456789abcdef'.split(''));
const tagString = fc.string({ minLength: 1, maxLength: 12 });
const wellFormed = fc.record({
  kind: fc.string({ minLength: 1, maxLength: 8 }),
  nonce: fc.string({ maxLength: 16 }),
  data: fc.string({ maxLength: 70 }),
  tags: fc.array(fc.array(tagString, { minLength: 1, maxLength: 4 }), { maxLength: 5 }),
});

/** JSON that looks like a NUT-10 secret with any part replaced by arbitrary JSON. */
const nearMiss = fc
  .tuple(
    fc.constantFrom('P2PK', 'HTLC', 'X'),
    fc.dictionary(fc.constantFrom('nonce', 'data', 'tags', 'other'), fc.jsonValue({ maxDepth: 3 })),
    fc.option(fc.jsonValue({ maxDepth: 2 })),
  )
  .map(([kind, body, extra]) => JSON.stringify(extra === null ? [kind, body] : [kind, body, extra]));

describe('NUT-10 secret parsing on untrusted input', () => {
  it('never throws on arbitrary strings and JSON; only a JSON array opening with a string is well-known', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 4 }), nearMiss), (s) => {
        const r = parseWellKnownSecret(s);
        if (r.ok && r.secret !== undefined) {
          const json = JSON.parse(s) as unknown[];
          expect(Array.isArray(json)).toBe(true);
          expect(r.secret.kind).toBe(json[0]);
          for (const tag of r.secret.tags) {
            expect(tag.length).toBeGreaterThan(0);
            for (const v of tag) expect(typeof v === 'string' && v.length > 0).toBe(true);
          }
        }
        if (!r.ok) expect(r.detail).toMatch(/malformed|too long/);
      }),
      { numRuns: 3000 },
    );
  });

  it('parses every well-formed secret back to its parts', () => {
    fc.assert(
      fc.property(wellFormed, ({ kind, nonce, data, tags }) => {
        const r = parseWellKnownSecret(JSON.stringify([kind, { nonce, data, tags }]));
        expect(r).toEqual({ ok: true, secret: { kind, nonce, data, tags } });
      }),
      { numRuns: 500 },
    );
  });

  it('enforces its bounds', () => {
    const long = `["P2PK",{"nonce":"${'a'.repeat(DEFAULT_SECRET_LIMITS.maxSecretLength)}","data":""}]`;
    expect(parseWellKnownSecret(long).ok).toBe(false);
    const manyTags = JSON.stringify([
      'P2PK',
      { nonce: '', data: '', tags: Array.from({ length: 65 }, () => ['t']) },
    ]);
    expect(parseWellKnownSecret(manyTags).ok).toBe(false);
    const manyValues = JSON.stringify([
      'P2PK',
      { nonce: '', data: '', tags: [['t', ...Array(65).fill('v')]] },
    ]);
    expect(parseWellKnownSecret(manyValues).ok).toBe(false);
    expect(parseWellKnownSecret(42 as unknown as string).ok).toBe(false);
  });
});

describe('checkSpendingConditions on untrusted input', () => {
  it('never throws and answers 10001 for whatever inputs, witnesses and outputs arrive', () => {
    const anyInput = fc.record({
      secret: fc.oneof(nearMiss, fc.string({ maxLength: 80 })),
      C: fc.string({ maxLength: 70 }),
      witness: fc.oneof(
        fc.constant(undefined),
        fc.string({ maxLength: 100 }),
        fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
        fc.record({
          signatures: fc.array(fc.string({ unit: hexChar, minLength: 128, maxLength: 128 }), {
            maxLength: 3,
          }),
        }),
      ),
    });
    const anyOutput = fc.record({
      amount: fc.oneof(fc.nat(), fc.string({ maxLength: 5 })),
      B_: fc.string({ maxLength: 70 }),
    });
    fc.assert(
      fc.property(
        fc.array(anyInput, { minLength: 1, maxLength: 4 }),
        fc.array(anyOutput, { maxLength: 3 }),
        fc.integer(),
        (inputs, outputs, now) => {
          const r = checkSpendingConditions({ inputs: inputs as never, outputs, now });
          if (!r.ok) {
            expect(r.code).toBe(10001);
            expect(typeof r.detail).toBe('string');
          }
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('parseWitness never throws', () => {
    fc.assert(
      fc.property(fc.anything(), (w) => {
        parseWitness(w);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('mayCarryConditions', () => {
  it('is true for every secret that parses as well-known (so skipping on false is safe)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 60 }), nearMiss, fc.json()),
        fc.constantFrom('', ' ', '\n\t', '\r '),
        (s, ws) => {
          const secret = ws + s;
          const parsed = parseWellKnownSecret(secret);
          if (!parsed.ok || parsed.secret !== undefined)
            if (parsed.ok && parsed.secret !== undefined) expect(mayCarryConditions(secret)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
    expect(mayCarryConditions(' ["P2PK",{"nonce":"n","data":"d"}]')).toBe(true);
    expect(mayCarryConditions('a1b2')).toBe(false);
  });
});
