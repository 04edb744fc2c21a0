#!/usr/bin/env node
// What one L402 macaroon costs the node on its one thread: minted for every 402 that carries an
// invoice (mintMacaroon: HMAC chain + the binary V2 encoding of macaroons.ts) and verified for every
// paid request (verifyMacaroon: the library's decoder + HMAC chain), with this node's three caveats
// and with twelve (a bound: the node never writes more than three). Moved here from a unit test that
// asserted wall time; the test keeps the round trip's correctness.
import { NodeSecret } from '../dist/leases/node-secret.js';
import { mintMacaroon, verifyMacaroon } from '../dist/rails/l402/macaroons.js';

const secret = NodeSecret.fromBytes(new Uint8Array(32).fill(7));
const hash = 'ab'.repeat(32);
const ROUNDS = 2000;

/** Per-call times of `op` in microseconds, after a warm-up, sorted. */
function times(op) {
  for (let i = 0; i < 200; i++) op(i);
  const out = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = process.hrtime.bigint();
    op(i);
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return out.sort((a, b) => a - b);
}

function p(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor((q / 100) * sorted.length))].toFixed(0);
}

function conditionsOf(n) {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`alacarte_k${i}`, `value-${i}`]));
}

const lines = [
  '## L402 macaroons: mint and verify, one call',
  '',
  `${ROUNDS} calls each after a warm-up, microseconds.`,
  '',
  '| caveats | mint p50 | mint p99 | verify p50 | verify p99 | base64 chars |',
  '|---|---|---|---|---|---|',
];
for (const n of [3, 12]) {
  const conditions = conditionsOf(n);
  const minted = mintMacaroon(secret, 'alacarte', hash, conditions);
  const check = verifyMacaroon(secret, minted.base64);
  if (JSON.stringify(check?.conditions) !== JSON.stringify(conditions))
    throw new Error(`a macaroon of ${n} caveats did not verify`);
  const mint = times(() => mintMacaroon(secret, 'alacarte', hash, conditions));
  const verify = times(() => {
    if (!verifyMacaroon(secret, minted.base64)) throw new Error('did not verify');
  });
  lines.push(
    `| ${n} | ${p(mint, 50)} | ${p(mint, 99)} | ${p(verify, 50)} | ${p(verify, 99)} | ${minted.base64.length} |`,
  );
}
console.log(lines.join('\n'));
