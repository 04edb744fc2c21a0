#!/usr/bin/env node
// A lease paid over Lightning (L402) beside one paid with Cashu, on a real node (store, in-process
// mint, crun sandboxes, HTTP on loopback), interleaved so both see the same load:
//  - Cashu: POST /v1/leases with a token of the node's mint prepared beforehand (exact, no change);
//  - L402: the paid POST with `Authorization: L402 <macaroon>:<preimage>` (the 402 and the payment
//    made beforehand), and the whole round the client sees: 402, paying the invoice by melting
//    ecash at the node's mint, the paid POST.
// Prints one Markdown section.
import { Wallet } from '@cashu/cashu-ts';
import { createLease, ms, percentile, prepareTokens, startPaidNode, stopLease } from './lib/paid-node.mjs';

const ROUNDS = 20;
const body = { offer: 'small', seconds: 7200, image: 'busybox' };

async function challenge(url) {
  const res = await fetch(`${url}/v1/leases`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status !== 402 || !json.l402) throw new Error(`challenge answered ${res.status}`);
  return json.l402;
}

async function payByMelt(wallet, purse, invoice) {
  const quote = await wallet.createMeltQuoteBolt11(invoice);
  const need = Number(quote.amount) + Number(quote.fee_reserve);
  const { keep, send } = await wallet.send(need, purse.proofs, { includeFees: true });
  const melted = await wallet.meltProofsBolt11(quote, send);
  purse.proofs = [...keep, ...melted.change];
  return melted.quote.payment_preimage;
}

async function l402Lease(url, auth) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/leases`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: auth },
    body: JSON.stringify(body),
  });
  const lease = await res.json();
  if (res.status !== 201) throw new Error(`L402 lease answered ${res.status}: ${JSON.stringify(lease)}`);
  return { lease, ms: performance.now() - t0 };
}

async function cashuLease(url, token) {
  const res = await createLease(url, body, token);
  if (res.status !== 201) throw new Error(`Cashu lease answered ${res.status}: ${JSON.stringify(res.body)}`);
  return { lease: res.body, ms: res.ms };
}

// One client asks for 2 invoices per round: above the default per-address invoice limit, which
// this measures nothing of.
const t = await startPaidNode({ l402: { invoiceBurst: 10_000, invoicesPerMinute: 100_000 } });
try {
  const tokens = await prepareTokens(t.mintUrl, ROUNDS + 1, [64, 32, 16, 8]);
  const wallet = new Wallet(t.mintUrl, { unit: 'sat' });
  await wallet.loadMint();
  const quote = await wallet.createMintQuoteBolt11(130 * 2 * (ROUNDS + 1));
  const purse = { proofs: await wallet.mintProofsBolt11(130 * 2 * (ROUNDS + 1), quote.quote) };
  // Warm-up, not timed.
  await stopLease(t.url, (await cashuLease(t.url, tokens[ROUNDS])).lease);
  const cashu = [];
  const l402Paid = [];
  const l402Round = [];
  const asked = [];
  const melts = [];
  for (let i = 0; i < ROUNDS; i++) {
    const c = await cashuLease(t.url, tokens[i]);
    cashu.push(c.ms);
    await stopLease(t.url, c.lease);

    const ch = await challenge(t.url);
    const preimage = await payByMelt(wallet, purse, ch.invoice);
    const paid = await l402Lease(t.url, `L402 ${ch.macaroon}:${preimage}`);
    l402Paid.push(paid.ms);
    await stopLease(t.url, paid.lease);

    const r0 = performance.now();
    const ch2 = await challenge(t.url);
    asked.push(performance.now() - r0);
    const p0 = performance.now();
    const pre2 = await payByMelt(wallet, purse, ch2.invoice);
    melts.push(performance.now() - p0);
    const round = await l402Lease(t.url, `L402 ${ch2.macaroon}:${pre2}`);
    l402Round.push(performance.now() - r0);
    await stopLease(t.url, round.lease);
  }
  const row = (name, v) => `| ${name} | ${ms(percentile(v, 50))} | ${ms(percentile(v, 95))} |`;
  console.log(
    [
      '## Paying with Lightning (L402) beside Cashu',
      '',
      `${ROUNDS} leases each, interleaved, busybox, until the sandbox answers (201).`,
      '',
      '| payment | p50 | p95 |',
      '|---|---|---|',
      row('Cashu token (prepared)', cashu),
      row('L402, paid request (invoice paid beforehand)', l402Paid),
      row('L402, whole round: 402, melt-pay, paid request', l402Round),
      row('… of which the 402 (invoice + macaroon)', asked),
      row('… of which paying by melt (cashu-ts: swap, quote, melt)', melts),
      '',
    ].join('\n'),
  );
} finally {
  await t.close();
}
