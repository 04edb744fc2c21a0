#!/usr/bin/env node
// Raw throughput of the mint's per-proof crypto on one core: verify an input (hash_to_curve +
// k·Y == C), sign an output (C_ = k·B_) and prove it (NUT-12 DLEQ), natively (libsecp256k1) beside
// the same work done with cashu-ts (pure-JS noble). Inputs are prepared beforehand; only the mint
// side is timed. `nativeProofsPerSecond` is exported so the HTTP swap benchmark can put the same
// figure beside its own in one run.
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import * as cts from '@cashu/cashu-ts';
import {
  blindMessage,
  bytesToHex,
  hashToCurve,
  publicKeyOf,
  signBlinded,
  signBlindedWithDleq,
  verifyProofY,
} from '../dist/mint/crypto/index.js';
import { secp } from '../dist/mint/crypto/native.js';

/** Reference figure from the issue: libsecp256k1 k·P per second on one core of this machine. */
const REFERENCE_KP_PER_S = 21_800;

function scalar() {
  for (;;) {
    const k = new Uint8Array(randomBytes(32));
    if (secp.privateKeyVerify(k)) return k;
  }
}

/** n prepared proofs for key k: an input (secret, C) and an output B_ each. */
function prepare(k, n) {
  const A = publicKeyOf(k);
  return Array.from({ length: n }, () => {
    const secret = new TextEncoder().encode(bytesToHex(randomBytes(32)));
    const C = signBlinded(k, hashToCurve(secret));
    const B_ = blindMessage(new TextEncoder().encode(bytesToHex(randomBytes(32))), scalar());
    return { secret, C, B_, A };
  });
}

/** Runs `op(i)` for about `seconds`, returns operations per second. */
function rate(op, seconds) {
  // Warm-up so the JIT has settled.
  for (let i = 0; i < 20; i++) op(i);
  const start = process.hrtime.bigint();
  const limit = BigInt(Math.round(seconds * 1e9));
  let n = 0;
  let elapsed = 0n;
  do {
    for (let j = 0; j < 10; j++) op(n++);
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < limit);
  return n / (Number(elapsed) / 1e9);
}

/** Native proofs per second: verify one input + sign one output with its DLEQ proof. */
export function nativeProofsPerSecond({ seconds = 1.5, k = scalar() } = {}) {
  const work = prepare(k, 512);
  return rate((i) => {
    const w = work[i % work.length];
    const Y = hashToCurve(w.secret);
    if (!verifyProofY(k, Y, w.C)) throw new Error('native verify failed');
    signBlindedWithDleq(k, w.B_, w.A);
  }, seconds);
}

function main() {
  const k = scalar();
  const work = prepare(k, 512);
  const pick = (i) => work[i % work.length];
  const noble = work.slice(0, 64).map((w) => ({
    secret: w.secret,
    C: cts.pointFromHex(bytesToHex(w.C)),
    B_: cts.pointFromHex(bytesToHex(w.B_)),
  }));
  const pickNoble = (i) => noble[i % noble.length];
  const s = 1.0;

  const rows = [
    [
      'k·P (scalar × point)',
      rate((i) => secp.publicKeyTweakMul(pick(i).B_, k, true), s),
      rate((i) => pickNoble(i).B_.multiply(0x1234567890abcdef1234567890abcdefn), s / 2),
    ],
    [
      'hash_to_curve',
      rate((i) => hashToCurve(pick(i).secret), s / 2),
      rate((i) => cts.hashToCurve(pickNoble(i).secret), s / 2),
    ],
    [
      'verify input (hash_to_curve + k·Y == C)',
      rate((i) => verifyProofY(k, hashToCurve(pick(i).secret), pick(i).C), s),
      rate(
        (i) => cts.verifyUnblindedSignature({ C: pickNoble(i).C, secret: pickNoble(i).secret, id: '00' }, k),
        s / 2,
      ),
    ],
    [
      'sign output (C_ = k·B_)',
      rate((i) => signBlinded(k, pick(i).B_), s),
      rate((i) => cts.createBlindSignature(pickNoble(i).B_, k, '00'), s / 2),
    ],
    [
      'sign output + DLEQ',
      rate((i) => signBlindedWithDleq(k, pick(i).B_, pick(i).A), s),
      rate((i) => {
        cts.createBlindSignature(pickNoble(i).B_, k, '00');
        cts.createDLEQProof(pickNoble(i).B_, k);
      }, s / 2),
    ],
  ];
  const nativeProofs = nativeProofsPerSecond({ seconds: 1.5, k });
  const nobleProofs = rate((i) => {
    const w = pickNoble(i);
    if (!cts.verifyUnblindedSignature({ C: w.C, secret: w.secret, id: '00' }, k))
      throw new Error('noble verify failed');
    cts.createBlindSignature(w.B_, k, '00');
    cts.createDLEQProof(w.B_, k);
  }, 1.0);
  rows.push(['**per proof: verify + sign + DLEQ**', nativeProofs, nobleProofs]);

  const fmt = (x) => Math.round(x).toLocaleString('en-US');
  const kp = rows[0][1];
  const lines = [
    '## Mint crypto: native (libsecp256k1) vs cashu-ts (noble), one core',
    '',
    '| operation | native /s | cashu-ts /s | native ÷ cashu-ts |',
    '| --- | ---: | ---: | ---: |',
    ...rows.map(([name, a, b]) => `| ${name} | ${fmt(a)} | ${fmt(b)} | ${(a / b).toFixed(1)}× |`),
    '',
    `- Raw per-proof mint work (verify one input, sign one output with its DLEQ proof): **${fmt(nativeProofs)} proofs/s** natively.`,
    `- Native k·P: ${fmt(kp)}/s against the ${fmt(REFERENCE_KP_PER_S)}/s measured for the issue ` +
      `(${((kp / REFERENCE_KP_PER_S) * 100).toFixed(0)}%; the machine is shared, so expect noise).`,
    `- Target (hot path native, ≥ 10× the pure-JS rate per proof): ${nativeProofs >= 10 * nobleProofs ? 'met' : 'NOT met'}.`,
  ];
  console.log(lines.join('\n'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
