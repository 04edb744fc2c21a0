import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type ConditionInput,
  type ConditionOutput,
  checkSpendingConditions,
  sigAllMessage,
} from '../../../../src/mint/conditions/index.js';
import { codeBlocks, readVectorFile } from '../crypto/vectors.js';

/** A fixed clock between the vectors' past (21, 1) and future (99999999999, 4854185133) locktimes. */
const NOW = 1_750_000_000;

interface Request {
  inputs: ConditionInput[];
  outputs: ConditionOutput[];
  quote?: string;
}

const blocks = codeBlocks(readVectorFile('11-test.md'));

/** Every JSON vector as a transaction: a lone Proof becomes a one-input swap with no outputs. */
const cases = blocks
  .map((b, index) => ({ b, index }))
  .filter(({ b }) => b.lang === 'json')
  .map(({ b, index }) => {
    const json = JSON.parse(b.body) as Request | (ConditionInput & { amount: number });
    const request: Request = 'inputs' in json ? json : { inputs: [json], outputs: [] };
    const hasWitness = request.inputs.some((i) => i.witness !== undefined);
    // The prose says which vectors must fail; a lock shown without any witness cannot be spent.
    const invalid = /\binvalid\b|\bfailing\b|\*\*not\*\*/i.test(b.before) || !hasWitness;
    return { request, invalid, why: `${b.headings.at(-1)}: ${b.before.split('\n').at(-1)}`, index };
  });

const check = (r: Request, now = NOW) =>
  checkSpendingConditions({ inputs: r.inputs, outputs: r.outputs, now, quoteId: r.quote });

describe('NUT-11 vectors', () => {
  it('finds all vectors, valid and invalid', () => {
    expect(cases.length).toBe(20);
    expect(cases.filter((c) => c.invalid).length).toBe(6);
  });

  it('accepts every valid vector and rejects every invalid one with code 10001', () => {
    for (const c of cases) {
      const result = check(c.request);
      if (c.invalid) {
        expect(result.ok, c.why).toBe(false);
        if (!result.ok) expect(result.code).toBe(10001);
      } else {
        expect(result, c.why).toEqual({ ok: true });
      }
    }
  });

  it('builds the listed SIG_ALL msg_to_sign and its sha256 for the example swap and melt', () => {
    let checked = 0;
    blocks.forEach((b, i) => {
      if (b.lang !== '' || !/msg_to_sign/.test(b.before)) return;
      const request = JSON.parse(blocks[i - 1]?.body ?? '') as Request;
      const msg = sigAllMessage(request.inputs, request.outputs, request.quote);
      expect(msg).toBe(b.body.trim());
      const digest = /sha256sum\(msg_to_sign\)[^`]*`([0-9a-f]{64})`/.exec(blocks[i + 1]?.before ?? '')?.[1];
      expect(digest).toBeDefined();
      expect(createHash('sha256').update(msg).digest('hex')).toBe(digest);
      checked++;
    });
    expect(checked).toBe(2);
  });

  it('a valid SIG_ALL signature no longer holds once an output, the quote or an input changes', () => {
    const valid = cases.filter((c) => !c.invalid && c.request.inputs[0]?.secret.includes('SIG_ALL'));
    expect(valid.length).toBeGreaterThanOrEqual(6);
    for (const c of valid) {
      const r = c.request;
      const [out] = r.outputs;
      if (out) {
        expect(check({ ...r, outputs: [{ ...out, amount: Number(out.amount) + 1 }] }).ok, c.why).toBe(false);
        expect(check({ ...r, outputs: [...r.outputs, out] }).ok, c.why).toBe(false);
      }
      if (r.quote !== undefined) expect(check({ ...r, quote: `${r.quote}x` }).ok, c.why).toBe(false);
      const [first] = r.inputs;
      if (first) {
        const C = first.C.startsWith('02') ? `03${first.C.slice(2)}` : `02${first.C.slice(2)}`;
        expect(check({ ...r, inputs: [{ ...first, C }] }).ok, c.why).toBe(false);
        expect(check({ ...r, inputs: [{ ...first, witness: undefined }] }).ok, c.why).toBe(false);
      }
    }
  });

  it('locktime decides the refund pathway: the refund-signed proofs fail before their locktime', () => {
    const refundSigned = cases.find((c) => /refund key that is spendable/.test(c.why));
    expect(refundSigned).toBeDefined();
    expect(check(refundSigned?.request as Request).ok).toBe(true);
    expect(check(refundSigned?.request as Request, 20).ok).toBe(false);
  });
});
