import { existsSync } from 'node:fs';
import type { Proof, Wallet } from '@cashu/cashu-ts';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../../helpers/cli.js';
import { expectBalanced, fundedWallet, ledgerOf, postJson, sumOf } from '../../helpers/lease-node.js';
import {
  type BurstOutcome,
  killMidBurst,
  NodeProcess,
  QUARTER_OFFER,
  restartAfterKill,
  stopAllAndCheck,
} from '../../helpers/node-process.js';

/**
 * Rule 5 for Lightning (L402): the built server is killed with SIGKILL while paid L402 requests are
 * between the paid invoice being accepted and the lease answer, then started again on the same data
 * directory and port. The same `Authorization: L402 <macaroon>:<preimage>` again returns the same
 * lease (200), a lease for the first time (the crash came before the claim was recorded) or the
 * refund of a start the crash cut short — never a second lease, never a paid invoice that bought
 * nothing; no sandbox runs unpaid and the books balance.
 */
const OPERATOR = 'operator-token-for-l402-crash-01234';
const BURST = 12;
/**
 * Rounds of BURST at most, until one has requests cut off by the kill. A round's leases stay
 * running: two rounds of quarter leases (6 vCPUs) fit the node's capacity (8), a third would not.
 */
const ATTEMPTS = 2;
const PRICE = 120; // 60 sat/h × 2 h
const body = { offer: 'quarter', seconds: 7200, image: 'busybox' };
const nodeProcess = new NodeProcess({
  prefix: 'l402-crash',
  config: {
    offers: [QUARTER_OFFER],
  },
  env: { ALACARTE_OPERATOR_TOKEN: OPERATOR },
});

afterAll(() => nodeProcess.cleanup());

/** The 402's invoice paid by melting ecash at the node's own mint, as a Cashu wallet pays any invoice. */
async function paidCredential(url: string, wallet: Wallet, purse: { proofs: Proof[] }): Promise<string> {
  const challenge = await postJson(`${url}/v1/leases`, body);
  expect(challenge.status).toBe(402);
  const l402 = challenge.body.l402 as { invoice: string; macaroon: string };
  const quote = await wallet.createMeltQuoteBolt11(l402.invoice);
  const need = Number(quote.amount) + Number(quote.fee_reserve);
  const { keep, send } = await wallet.send(need, purse.proofs, { includeFees: true });
  const melted = await wallet.meltProofsBolt11(quote, send);
  purse.proofs = [...keep, ...melted.change];
  const preimage = melted.quote.payment_preimage;
  if (!preimage) throw new Error('the melt gave no preimage');
  return `L402 ${l402.macaroon}:${preimage}`;
}

describe('kill -9 in the middle of L402-paid requests', { timeout: 240_000 }, () => {
  it('answers every paid credential after a restart with its one lease or its refund, and the books balance', async () => {
    expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
    const credentials: string[] = [];
    const before: BurstOutcome[] = [];
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const server = await nodeProcess.start();
      const { wallet, proofs } = await fundedWallet(server.mintUrl, BURST * (PRICE + 10));
      const purse = { proofs };
      const round: string[] = [];
      for (let i = 0; i < BURST; i++) round.push(await paidCredential(server.url, wallet, purse));

      // Every invoice is paid; now the paid requests, all at once. Kill the server once a few have
      // been answered, while the rest are between the invoice's check, the claim and the start.
      const outcomes = await killMidBurst(
        nodeProcess,
        round.map((authorization) => () => postJson(`${server.url}/v1/leases`, body, { authorization })),
        (answered) => answered.filter((r) => r.status === 201).length === 3,
      );
      for (const r of outcomes) if (r !== 'connection lost') expect(r.status).toBe(201);
      expect(outcomes.filter((r) => r !== 'connection lost').length).toBeGreaterThanOrEqual(3);
      credentials.push(...round);
      before.push(...outcomes);
      // A round whose answers all went out before the kill landed (they leave together, one group
      // commit's worth) proves nothing about a crash: another round, its node killed the same way.
      if (outcomes.includes('connection lost')) break;
    }
    const answered = before.filter((r) => r !== 'connection lost');
    // The kill cut requests off mid-way (else this proves nothing about a crash).
    expect(answered.length).toBeLessThan(credentials.length);

    const { url, receiver } = await restartAfterKill(nodeProcess);

    const running = new Map<string, string>(); // lease id → credential
    let refunded = 0;
    // Cut off by the kill, then: recorded before it (200, 503) or not at all (201).
    const cutOff = { recorded: 0, unrecorded: 0 };
    for (const [i, authorization] of credentials.entries()) {
      const earlier = before[i];
      if (earlier === undefined) throw new Error('no outcome');
      const retry = await postJson(`${url}/v1/leases`, body, { authorization });
      if (retry.status === 200 || retry.status === 201) {
        expect(retry.body).toMatchObject({ state: 'running', paid: PRICE, change: null });
        // A lease answered before the crash is the same lease now.
        if (earlier !== 'connection lost') {
          expect(retry.status).toBe(200);
          expect(retry.body.id).toBe(earlier.body.id);
        }
        expect(running.has(String(retry.body.id))).toBe(false);
        running.set(String(retry.body.id), String(retry.body.token));
      } else {
        // Paid, recorded, and the start cut short by the crash: everything back as own-mint ecash.
        expect(retry.status, JSON.stringify(retry.body)).toBe(503);
        expect(earlier).toBe('connection lost');
        expect(retry.body).toMatchObject({ error: 'start_failed', refunded: PRICE });
        expect(sumOf(await receiver.receive(String(retry.body.refund)))).toBe(PRICE);
        refunded++;
      }
      if (earlier === 'connection lost') cutOff[retry.status === 201 ? 'unrecorded' : 'recorded']++;
      // And again: the same answer, never a second lease.
      const again = await postJson(`${url}/v1/leases`, body, { authorization });
      if (retry.status === 503) expect(again.status).toBe(503);
      else {
        expect(again.status).toBe(200);
        expect(again.body.id).toBe(retry.body.id);
      }
    }
    const paid = credentials.length;
    expect(running.size + refunded).toBe(paid);
    // The kill landed between a paid invoice being accepted (its claim recorded) and the lease
    // answer for some; those cut off before the claim are granted now, their invoices still paid.
    expect(cutOff.recorded).toBeGreaterThanOrEqual(1);
    expect(cutOff.recorded + cutOff.unrecorded).toBe(paid - answered.length);

    const books = await ledgerOf(url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
    // Every paid invoice bought exactly one lease.
    expect(books.received).toBe(PRICE * paid);
    expect(books.leases).toMatchObject({ running: running.size, failed: refunded });
    expect(books.refunded).toBe(PRICE * refunded);
    // Lightning in: the L402 invoices, claimed once each, beside the ecash minted for the payer.
    expect(books.mint.lightning_in).toBe(paid * (PRICE + 10) + PRICE * paid);

    await stopAllAndCheck(nodeProcess, running, OPERATOR);
  });
});
