import {
  getDecodedToken,
  getDecodedTokenBinary,
  getEncodedToken,
  getEncodedTokenBinary,
  type Proof,
} from '@cashu/cashu-ts';
import { describe, expect, it } from 'vitest';
import {
  blindMessage,
  bytesToHex,
  hashToCurve,
  hexToBytes,
  signBlinded,
} from '../../../../src/mint/crypto/index.js';
import {
  type CodeBlock,
  codeBlocks,
  keyValues,
  parseDiagnosticJson,
  readVectorFile,
  records,
} from './vectors.js';

const blocks = codeBlocks(readVectorFile('00-tests.md'));
const under = (heading: string) => blocks.filter((b) => b.headings.includes(heading));
const hex = (s: string | undefined) => {
  const b = hexToBytes(s ?? '');
  if (b === undefined) throw new Error(`bad hex in vector: ${s}`);
  return b;
};

function vectorRecords(heading: string, keys: string[]): Record<string, string>[] {
  const recs = under(heading).flatMap((b) => records(keyValues(b.body)));
  expect(recs.length, `vectors under "${heading}"`).toBeGreaterThan(0);
  for (const r of recs) for (const k of keys) expect(r[k], `${heading}: ${k}`).toBeDefined();
  return recs;
}

describe('NUT-00 vectors: BDHKE', () => {
  it('hash_to_curve maps every message to the listed point', () => {
    const recs = vectorRecords('Hash-to-curve function', ['Message', 'Point']);
    for (const r of recs) expect(bytesToHex(hashToCurve(hex(r.Message)))).toBe(r.Point);
  });

  it('blinding x with r gives the listed B_', () => {
    const recs = vectorRecords('Blinded messages', ['x', 'r', 'B_']);
    for (const r of recs) expect(bytesToHex(blindMessage(hex(r.x), hex(r.r)))).toBe(r.B_);
  });

  it('signing B_ with k gives the listed C_', () => {
    const recs = vectorRecords('Blinded signatures', ['mint private key', 'B_', 'C_']);
    for (const r of recs) expect(bytesToHex(signBlinded(hex(r['mint private key']), hex(r.B_)))).toBe(r.C_);
  });
});

/** Tokens are encoded by cashu-ts in alacarte; these vectors pin that it does so per the spec. */
describe('NUT-00 vectors: tokens (through cashu-ts)', () => {
  const tokenStrings = (b: CodeBlock) =>
    b.body
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));

  it('V3: the JSON serializes to the listed cashuA string and decodes back', () => {
    const [json, serialized] = under('Serialization of TokenV3');
    expect(json?.lang).toBe('json');
    const expected = tokenStrings(serialized as CodeBlock)[0] ?? '';
    const token = JSON.parse(json?.body ?? '') as { token: { mint: string; proofs: unknown[] }[] };
    const b64 = Buffer.from(JSON.stringify(token)).toString('base64url');
    expect(`cashuA${b64}`.replace(/=+$/, '')).toBe(expected.replace(/=+$/, ''));
    const decoded = getDecodedToken(expected, []);
    expect(decoded.mint).toBe(token.token[0]?.mint);
    expect(decoded.proofs.map((p) => ({ ...p, amount: Number(p.amount) }))).toEqual(token.token[0]?.proofs);
  });

  it('V3: incorrect prefixes are rejected, the correct token and both padding variants decode', () => {
    const [bad, good, padding] = under('Deserialization of TokenV3');
    const badTokens = tokenStrings(bad as CodeBlock);
    expect(badTokens.length).toBe(2);
    for (const t of badTokens) expect(() => getDecodedToken(t, [])).toThrow();
    for (const t of [...tokenStrings(good as CodeBlock), ...tokenStrings(padding as CodeBlock)]) {
      const decoded = getDecodedToken(t, []);
      expect(decoded.mint).toBe('https://8333.space:3338');
      expect(decoded.proofs.length).toBe(2);
    }
    const [padded, unpadded] = tokenStrings(padding as CodeBlock);
    expect(getDecodedToken(padded ?? '', [])).toEqual(getDecodedToken(unpadded ?? '', []));
  });

  interface DiagToken {
    t: { i: string; p: { a: number; s: string; c: string }[] }[];
    d?: string;
    m: string;
    u: string;
  }
  const toCashuTs = (d: DiagToken) => ({
    mint: d.m,
    unit: d.u,
    ...(d.d !== undefined ? { memo: d.d } : {}),
    proofs: d.t.flatMap((entry) => entry.p.map((p) => ({ id: entry.i, amount: p.a, secret: p.s, C: p.c }))),
  });

  // cashu-ts writes the CBOR map keys in another order (m, u, t, d) than the vectors (t, d, m, u);
  // CBOR maps are unordered, so the contract is: the listed bytes decode to the token, and what
  // cashu-ts encodes decodes to the same token.
  const comparable = (t: { mint: string; unit?: string; memo?: string; proofs: Proof[] }) => ({
    mint: t.mint,
    unit: t.unit,
    memo: t.memo,
    proofs: t.proofs.map((p) => ({ id: p.id, amount: Number(p.amount), secret: p.secret, C: p.C })),
  });
  type EncodeArg = Parameters<typeof getEncodedToken>[0];

  it('V4: every listed cashuB string decodes to its JSON token, and cashu-ts round-trips it', () => {
    const v4 = under('Serialization of TokenV4');
    const pairs: [CodeBlock, CodeBlock][] = [];
    for (let i = 0; i + 1 < v4.length; i += 2) pairs.push([v4[i] as CodeBlock, v4[i + 1] as CodeBlock]);
    expect(pairs.length).toBe(2);
    for (const [json, encoded] of pairs) {
      const token = toCashuTs(parseDiagnosticJson(json.body) as DiagToken);
      const expected = tokenStrings(encoded)[0] ?? '';
      expect(expected.startsWith('cashuB')).toBe(true);
      const ids = [...new Set(token.proofs.map((p) => p.id))];
      const want = comparable(token as unknown as EncodeArg);
      expect(comparable(getDecodedToken(expected, ids))).toEqual(want);
      const ours = getEncodedToken(token as unknown as EncodeArg);
      expect(comparable(getDecodedToken(ours, ids))).toEqual(want);
    }
  });

  it('V4 raw binary: the listed bytes decode to the token, and cashu-ts round-trips it', () => {
    const [json] = under('Raw Token Serialization');
    const text = readVectorFile('00-tests.md');
    const rawHex = /Serialized to raw binary:\s*`h'([0-9a-f]+)'`/.exec(text)?.[1];
    expect(rawHex).toBeDefined();
    const token = toCashuTs(parseDiagnosticJson(json?.body ?? '') as DiagToken);
    const want = comparable(token as unknown as EncodeArg);
    expect(comparable(getDecodedTokenBinary(hex(rawHex)))).toEqual(want);
    const ours = getEncodedTokenBinary(token as unknown as EncodeArg);
    expect(bytesToHex(ours.subarray(0, 5))).toBe(rawHex?.slice(0, 10));
    expect(comparable(getDecodedTokenBinary(ours))).toEqual(want);
  });
});
