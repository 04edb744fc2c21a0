import { Wallet } from '@cashu/cashu-ts';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { expectBalanced, type LeaseTestNode, ledgerOf, postJson } from '../../helpers/lease-node.js';
import {
  earnAt,
  type PayoutNodes,
  startPayoutNodes,
  type TrustedMint,
  untilNoneRunning,
} from '../../helpers/payout-fixtures.js';

/**
 * Payouts in a row at a trusted mint, each paying with the change of earlier ones: every payout is
 * paid once and only once (the mint pays each invoice once, the ledger has one row each, the books
 * agree), and a payout restores the change of just the earlier payouts whose change may still be
 * held there, not every payout ever made (a change found all spent is not asked about again).
 */
const OPERATOR = 'operator-token-for-payout-change-00';
// Four small payouts, each leaving change; then one that takes nearly all that is held (the
// change of the earlier ones with it); then a small one again.
const AMOUNTS = [60, 60, 60, 60, 330, 10];
const PAYOUTS = AMOUNTS.length;
const TOTAL = AMOUNTS.reduce((a, b) => a + b, 0);

let nodes: PayoutNodes | undefined;
let trusted: TrustedMint;
let renter: LeaseTestNode;
const operatorWallet = new FakeLightningBackend();

beforeAll(async () => {
  nodes = await startPayoutNodes({ prefix: 'payout-change-mint', operatorToken: OPERATOR });
  ({ trusted, renter } = nodes);
});
afterAll(() => nodes?.close());
afterEach(() => {
  vi.restoreAllMocks();
});

/** Paid payouts at the trusted mint whose change is not yet known spent, as the store says. */
async function changeMayBeHeld(): Promise<string[]> {
  const rows = await renter.node.db
    .selectFrom('payouts')
    .select('id')
    .where('source', '=', trusted.mintUrl)
    .where('state', '=', 'paid')
    .where('change_spent', '=', 0)
    .execute();
  return rows.map((r) => r.id);
}

describe('payouts in a row at a trusted mint', () => {
  it('pays each once from earlier change, restoring only the change that may still be held', async () => {
    // 600 sat earned at the trusted mint, in two leases' ecash.
    await earnAt(renter.url, trusted.mintUrl);
    await earnAt(renter.url, trusted.mintUrl);
    const start = await untilNoneRunning(renter.url, OPERATOR);
    expect(start.by_mint.trusted[0]).toMatchObject({ charged: 600, unpaid: 600 });
    const theirsBefore = await trusted.books();

    // Every restore the node's payer makes (the test's own wallets make none).
    const restore = vi.spyOn(Wallet.prototype, 'restore');
    const restoresPerPayout: number[] = [];
    const asked: number[] = [];
    const ids = new Set<string>();
    for (const [i, amount] of AMOUNTS.entries()) {
      asked.push((await changeMayBeHeld()).length);
      const before = restore.mock.calls.length;
      const to = (await operatorWallet.createInvoice(Amount.of(amount), `payout ${i}`)).bolt11;
      const out = await postJson(
        `${renter.url}/v1/operator/payout`,
        { to, from: trusted.mintUrl },
        { authorization: `Bearer ${OPERATOR}` },
      );
      expect(out.status, JSON.stringify(out.body)).toBe(200);
      expect(out.body).toMatchObject({ paid: amount, state: 'paid', source: trusted.mintUrl });
      ids.add(String(out.body.id));
      restoresPerPayout.push(restore.mock.calls.length - before);
      // The same invoice again is never paid twice.
      const again = await postJson(
        `${renter.url}/v1/operator/payout`,
        { to, from: trusted.mintUrl },
        { authorization: `Bearer ${OPERATOR}` },
      );
      expect([again.status, again.body.error]).toEqual([409, 'invoice_already_paid']);
    }

    // One restore per earlier payout whose change may still be held, none for the rest.
    expect(restoresPerPayout).toEqual(asked);
    // Change found all spent is marked and not asked about again: some payout asked about fewer
    // payouts than came before it.
    expect(asked.some((n, i) => n < i)).toBe(true);
    // The big payout took all the earlier change (oldest change first): only its own and the last
    // payout's change may still be held, whatever the number of payouts before.
    expect((await changeMayBeHeld()).length).toBeLessThanOrEqual(2);

    // Each paid exactly once: one row each, the trusted mint paid each invoice once over Lightning.
    expect(ids.size).toBe(PAYOUTS);
    const books = await ledgerOf(renter.url, OPERATOR);
    expect(books.payouts).toHaveLength(PAYOUTS);
    expect(books.payouts.map((p) => [p.amount, p.state]).sort()).toEqual(
      AMOUNTS.map((a) => [a, 'paid']).sort(),
    );
    const fees = books.payouts.reduce((n, p) => n + (p.fee ?? 0), 0);
    expect(books.by_mint.trusted[0]).toMatchObject({
      charged: 600,
      paid_out: TOTAL + fees,
      unpaid: 600 - TOTAL - fees,
    });
    expect(expectBalanced(books)).toEqual([]);
    const theirs = await trusted.books();
    expect(theirs.lightning_out).toBe(theirsBefore.lightning_out + TOTAL);
    expect(theirs.outstanding).toBe(theirs.lightning_in - theirs.lightning_out);
  });
});
