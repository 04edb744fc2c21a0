import { afterEach, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { MintError } from '../../../src/mint/errors.js';
import { createTestMint, mintProofs, prepareOutputs, type TestMint, unblind, yOf } from './harness.js';

let t: TestMint;
afterEach(async () => {
  await t?.close();
});

async function expectCode(p: Promise<unknown>, code: number): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MintError);
  expect((err as MintError).code, (err as MintError).message).toBe(code);
}

/** An invoice of some other Lightning node. */
async function outsideInvoice(t: TestMint, sat: number): Promise<string> {
  const other = new FakeLightningBackend({ now: () => t.clock.now });
  return (await other.createInvoice(Amount.of(sat), 'outside')).bolt11;
}

async function states(t: TestMint, secrets: string[]): Promise<string[]> {
  return (await t.mint.checkState(secrets.map(yOf))).states.map((s) => s.state);
}

describe('mint quotes (NUT-04/23)', () => {
  it('goes UNPAID -> PAID (asked from Lightning) -> ISSUED, and issues once', async () => {
    t = await createTestMint({ lightning: { settleDelayMs: 60_000 } });
    const quote = await t.mint.createMintQuote({ amount: 5, unit: 'sat' });
    expect(quote).toMatchObject({ amount: 5, unit: 'sat', state: 'UNPAID' });
    expect(quote.quote).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const keyset = t.mint.keys().keysets[0]!;
    const outputs = () => prepareOutputs(keyset.id, [1, 4]).map((p) => p.output);
    await expectCode(t.mint.mint({ quote: quote.quote, outputs: outputs() }), 20001);
    t.clock.now += 61_000;
    expect((await t.mint.getMintQuote(quote.quote)).state).toBe('PAID');
    await expectCode(
      t.mint.mint({ quote: quote.quote, outputs: prepareOutputs(keyset.id, [4]).map((p) => p.output) }),
      11005,
    );
    await t.mint.mint({ quote: quote.quote, outputs: outputs() });
    expect((await t.mint.getMintQuote(quote.quote)).state).toBe('ISSUED');
    await expectCode(t.mint.mint({ quote: quote.quote, outputs: outputs() }), 20002);
  });

  it('refuses unknown units and amounts outside the limits', async () => {
    t = await createTestMint({ limits: { mintMaxAmount: 1000 } });
    await expectCode(t.mint.createMintQuote({ amount: 5, unit: 'usd' }), 11013);
    await expectCode(t.mint.createMintQuote({ amount: 1001, unit: 'sat' }), 11006);
    await expectCode(t.mint.createMintQuote({ amount: 0, unit: 'sat' }), 11006);
  });
});

describe('melt (NUT-05/08/23)', () => {
  it('pays an outside invoice, marks the inputs SPENT and returns the unused fee reserve as change', async () => {
    t = await createTestMint();
    const proofs = await mintProofs(t, [64, 32, 8]);
    const invoice = await outsideInvoice(t, 100);
    const quote = await t.mint.createMeltQuote({ request: invoice, unit: 'sat' });
    expect(quote).toMatchObject({ amount: 100, fee_reserve: 2, state: 'UNPAID' });
    const keyset = t.mint.keys().keysets[0]!;
    const blanks = prepareOutputs(keyset.id, [1, 1, 1]).map((p) => p.output);
    const paid = await t.mint.melt({ quote: quote.quote, inputs: proofs, outputs: blanks });
    expect(paid.state).toBe('PAID');
    expect(paid.payment_preimage).toMatch(/^[0-9a-f]{64}$/);
    // 104 in, 100 paid, fee 0: 4 back
    expect(paid.change?.map((c) => c.amount)).toEqual([4]);
    expect(
      await states(
        t,
        proofs.map((p) => p.secret),
      ),
    ).toEqual(['SPENT', 'SPENT', 'SPENT']);
    const again = await t.mint.getMeltQuote(quote.quote);
    expect(again).toMatchObject({ state: 'PAID', change: paid.change });
    // A retry with the same inputs gets the same answer (NUT-19); other inputs cannot pay it again.
    expect(await t.mint.melt({ quote: quote.quote, inputs: proofs, outputs: blanks })).toEqual(paid);
    const others = await mintProofs(t, [64, 32, 8]);
    await expectCode(t.mint.melt({ quote: quote.quote, inputs: others }), 20006);
    expect(
      await states(
        t,
        others.map((p) => p.secret),
      ),
    ).toEqual(['UNSPENT', 'UNSPENT', 'UNSPENT']);
  });

  it("refuses a melt quote for an invoice of another chain than its Lightning's", async () => {
    t = await createTestMint();
    const mainnet = new FakeLightningBackend({ network: 'bc', now: () => t.clock.now });
    const invoice = (await mainnet.createInvoice(Amount.of(100), 'on mainnet')).bolt11;
    const refused = await t.mint.createMeltQuote({ request: invoice, unit: 'sat' }).then(
      () => undefined,
      (e: unknown) => e as MintError,
    );
    expect(refused).toBeInstanceOf(MintError);
    expect([refused?.code, refused?.message]).toEqual([
      10000,
      "the invoice is for mainnet (lnbc…), this node's Lightning is on regtest",
    ]);
  });

  it('refuses too little input, and spends nothing', async () => {
    t = await createTestMint();
    const proofs = await mintProofs(t, [64, 32, 4]);
    const quote = await t.mint.createMeltQuote({ request: await outsideInvoice(t, 100), unit: 'sat' });
    await expectCode(t.mint.melt({ quote: quote.quote, inputs: proofs }), 11005);
    expect(
      await states(
        t,
        proofs.map((p) => p.secret),
      ),
    ).toEqual(['UNSPENT', 'UNSPENT', 'UNSPENT']);
    expect((await t.mint.getMeltQuote(quote.quote)).state).toBe('UNPAID');
  });

  it('releases the inputs when the payment fails', async () => {
    t = await createTestMint({ lightning: { payFails: () => true } });
    const proofs = await mintProofs(t, [64, 32, 8]);
    const quote = await t.mint.createMeltQuote({ request: await outsideInvoice(t, 100), unit: 'sat' });
    await expectCode(t.mint.melt({ quote: quote.quote, inputs: proofs }), 20004);
    expect(
      await states(
        t,
        proofs.map((p) => p.secret),
      ),
    ).toEqual(['UNSPENT', 'UNSPENT', 'UNSPENT']);
    expect((await t.mint.getMeltQuote(quote.quote)).state).toBe('UNPAID');
  });

  it('holds the inputs PENDING while the payment is in flight, then settles them', async () => {
    t = await createTestMint({ lightning: { payDelayMs: 30_000 } });
    const proofs = await mintProofs(t, [64, 32, 8]);
    const quote = await t.mint.createMeltQuote({ request: await outsideInvoice(t, 100), unit: 'sat' });
    const keyset = t.mint.keys().keysets[0]!;
    const blanks = prepareOutputs(keyset.id, [1, 1]).map((p) => p.output);
    const pending = await t.mint.melt({ quote: quote.quote, inputs: proofs, outputs: blanks });
    expect(pending.state).toBe('PENDING');
    expect(
      await states(
        t,
        proofs.map((p) => p.secret),
      ),
    ).toEqual(['PENDING', 'PENDING', 'PENDING']);
    await expectCode(
      t.mint.swap({ inputs: proofs, outputs: prepareOutputs(keyset.id, [8, 32, 64]).map((p) => p.output) }),
      11002,
    );
    await expectCode(t.mint.melt({ quote: quote.quote, inputs: proofs }), 20005);
    t.clock.now += 31_000;
    const paid = await t.mint.getMeltQuote(quote.quote);
    expect(paid.state).toBe('PAID');
    expect(paid.change?.map((c) => c.amount)).toEqual([4]);
    expect(
      await states(
        t,
        proofs.map((p) => p.secret),
      ),
    ).toEqual(['SPENT', 'SPENT', 'SPENT']);
  });

  it('settles an invoice of this mint internally: no Lightning payment, the mint quote becomes PAID', async () => {
    // Invoices of this mint stay unpaid unless someone pays them.
    t = await createTestMint({ lightning: { settleDelayMs: 3_600_000 - 1 } });
    const funding = await t.mint.createMintQuote({ amount: 20, unit: 'sat' });
    await t.lightning.payInvoice(funding.request, Amount.zero());
    const keyset = t.mint.keys().keysets[0]!;
    const prepared = prepareOutputs(keyset.id, [16, 4]);
    const { signatures } = await t.mint.mint({
      quote: funding.quote,
      outputs: prepared.map((p) => p.output),
    });
    const inputs = unblind(prepared, signatures, keyset.keys);

    const target = await t.mint.createMintQuote({ amount: 18, unit: 'sat' });
    const meltQuote = await t.mint.createMeltQuote({ request: target.request, unit: 'sat' });
    expect(meltQuote.fee_reserve).toBe(0);
    const blanks = prepareOutputs(keyset.id, [1, 1]).map((p) => p.output);
    const paid = await t.mint.melt({ quote: meltQuote.quote, inputs, outputs: blanks });
    expect(paid.state).toBe('PAID');
    expect(paid.change?.map((c) => c.amount)).toEqual([2]);
    expect((await t.mint.getMintQuote(target.quote)).state).toBe('PAID');
    const { payment_hash } = await t.db
      .selectFrom('mint_mint_quotes')
      .select('payment_hash')
      .where('id', '=', target.quote)
      .executeTakeFirstOrThrow();
    expect(await t.lightning.invoiceState(payment_hash)).toBe('unpaid');
    // The receiver mints the 18 sat.
    const out = prepareOutputs(keyset.id, [16, 2]).map((p) => p.output);
    await expect(t.mint.mint({ quote: target.quote, outputs: out })).resolves.toBeDefined();
    // A second melt of the same invoice cannot happen.
    await expectCode(t.mint.createMeltQuote({ request: target.request, unit: 'sat' }), 20006);
  });

  it('answers 20006 (invoice already paid), not 20005, for an invoice another quote has paid', async () => {
    t = await createTestMint({ lightning: { payDelayMs: 0 } });
    const invoice = await outsideInvoice(t, 10);
    const [q1, q2] = [
      await t.mint.createMeltQuote({ request: invoice, unit: 'sat' }),
      await t.mint.createMeltQuote({ request: invoice, unit: 'sat' }),
    ];
    const [p1, p2] = [await mintProofs(t, [8, 4]), await mintProofs(t, [8, 4])];
    expect((await t.mint.melt({ quote: q1.quote, inputs: p1 })).state).toBe('PAID');
    await expectCode(t.mint.melt({ quote: q2.quote, inputs: p2 }), 20006);
    expect(
      await states(
        t,
        p2.map((p) => p.secret),
      ),
    ).toEqual(['UNSPENT', 'UNSPENT']);
    // A new quote for it is refused up front.
    await expectCode(t.mint.createMeltQuote({ request: invoice, unit: 'sat' }), 20006);
  });

  it("answers 20005 while another quote's payment of the invoice is in flight", async () => {
    t = await createTestMint({ lightning: { payDelayMs: 30_000 } });
    const invoice = await outsideInvoice(t, 10);
    const [q1, q2] = [
      await t.mint.createMeltQuote({ request: invoice, unit: 'sat' }),
      await t.mint.createMeltQuote({ request: invoice, unit: 'sat' }),
    ];
    const [p1, p2] = [await mintProofs(t, [8, 4]), await mintProofs(t, [8, 4])];
    expect((await t.mint.melt({ quote: q1.quote, inputs: p1 })).state).toBe('PENDING');
    await expectCode(t.mint.melt({ quote: q2.quote, inputs: p2 }), 20005);
  });

  it('pays an invoice once when two quotes for it are melted at the same time', async () => {
    t = await createTestMint({ lightning: { payDelayMs: 0 } });
    const invoice = await outsideInvoice(t, 10);
    const [q1, q2] = [
      await t.mint.createMeltQuote({ request: invoice, unit: 'sat' }),
      await t.mint.createMeltQuote({ request: invoice, unit: 'sat' }),
    ];
    const [p1, p2] = [await mintProofs(t, [8, 4]), await mintProofs(t, [8, 4])];
    const results = await Promise.allSettled([
      t.mint.melt({ quote: q1.quote, inputs: p1 }),
      t.mint.melt({ quote: q2.quote, inputs: p2 }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect([20005, 20006]).toContain((failed.reason as MintError).code);
    const loser = results[0]!.status === 'rejected' ? p1 : p2;
    expect(
      await states(
        t,
        loser.map((p) => p.secret),
      ),
    ).toEqual(['UNSPENT', 'UNSPENT']);
  });

  it('settles an own invoice once when two quotes for it are melted at the same time', async () => {
    t = await createTestMint({ lightning: { settleDelayMs: 3_600_000 - 1 } });
    const keyset = t.mint.keys().keysets[0]!;
    const fund = async () => {
      const q = await t.mint.createMintQuote({ amount: 12, unit: 'sat' });
      await t.lightning.payInvoice(q.request, Amount.zero());
      const prepared = prepareOutputs(keyset.id, [8, 4]);
      const { signatures } = await t.mint.mint({ quote: q.quote, outputs: prepared.map((p) => p.output) });
      return unblind(prepared, signatures, keyset.keys);
    };
    const [p1, p2] = [await fund(), await fund()];
    const target = await t.mint.createMintQuote({ amount: 10, unit: 'sat' });
    const [q1, q2] = [
      await t.mint.createMeltQuote({ request: target.request, unit: 'sat' }),
      await t.mint.createMeltQuote({ request: target.request, unit: 'sat' }),
    ];
    const results = await Promise.allSettled([
      t.mint.melt({ quote: q1.quote, inputs: p1 }),
      t.mint.melt({ quote: q2.quote, inputs: p2 }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect([20005, 20006]).toContain((failed.reason as MintError).code);
    const loser = results[0]!.status === 'rejected' ? p1 : p2;
    expect(
      await states(
        t,
        loser.map((p) => p.secret),
      ),
    ).toEqual(['UNSPENT', 'UNSPENT']);
  });
});
