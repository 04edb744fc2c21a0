import { afterEach, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import type { MintEvent } from '../../../src/mint/events.js';
import { createTestMint, mintProofs, prepareOutputs, type TestMint, yOf } from './harness.js';

/**
 * The mint's change feed (what NUT-17 notifications are made of): every committed change of a
 * quote or proof is told once, after the commit; nothing is told for a refused request.
 */
let t: TestMint | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

function record(mint: TestMint): MintEvent[] {
  const events: MintEvent[] = [];
  mint.mint.events.listen((e) => events.push(e));
  return events;
}

const proofEvents = (events: MintEvent[]) =>
  events.flatMap((e) =>
    e.kind === 'proof_state' ? e.states.map((s) => `${s.Y.slice(0, 8)} ${s.state}`) : [],
  );

describe('mint events', () => {
  it('tells of a quote paid by an incoming payment, then issued, with the Lightning backend announcing it', async () => {
    t = await createTestMint({ lightning: { settleDelayMs: 3_600_000 - 1 } });
    const events = record(t);
    const quote = await t.mint.createMintQuote({ amount: 4, unit: 'sat' });
    expect(events).toEqual([]);
    // Paid from outside (here: the backend itself); the mint hears it without being asked.
    await t.lightning.payInvoice(quote.request, Amount.zero('sat'));
    await waitUntil(() => events.length === 1);
    expect(events).toEqual([{ kind: 'mint_quote', id: quote.quote }]);
    const row = await t.db
      .selectFrom('mint_mint_quotes')
      .select('state')
      .where('id', '=', quote.quote)
      .executeTakeFirstOrThrow();
    expect(row.state).toBe('PAID');
    const keyset = t.mint.keys().keysets[0]!;
    await t.mint.mint({ quote: quote.quote, outputs: prepareOutputs(keyset.id, [4]).map((p) => p.output) });
    expect(events).toEqual([
      { kind: 'mint_quote', id: quote.quote },
      { kind: 'mint_quote', id: quote.quote },
    ]);
  });

  it('tells of proofs spent by a swap and by the node itself, and of none for a refused swap', async () => {
    t = await createTestMint();
    const keyset = t.mint.keys().keysets[0]!;
    const [a, b] = [await mintProofs(t, [2, 1]), await mintProofs(t, [4])];
    const events = record(t);
    await t.mint.swap({ inputs: a, outputs: prepareOutputs(keyset.id, [2, 1]).map((p) => p.output) });
    await t.mint.nodePayments().take(b, async () => {});
    await expect(
      t.mint.swap({ inputs: a, outputs: prepareOutputs(keyset.id, [2, 1]).map((p) => p.output) }),
    ).rejects.toThrow();
    expect(proofEvents(events)).toEqual([...a, ...b].map((p) => `${yOf(p.secret).slice(0, 8)} SPENT`));
  });

  it('tells of a melt that fails: its proofs PENDING, then UNSPENT again, and the quote each time', async () => {
    t = await createTestMint({ lightning: { payFails: () => true } });
    const proofs = await mintProofs(t, [8, 4]);
    const other = new FakeLightningBackend({ now: () => t!.clock.now });
    const invoice = (await other.createInvoice(Amount.of(5), 'fails')).bolt11;
    const quote = await t.mint.createMeltQuote({ request: invoice, unit: 'sat' });
    const events = record(t);
    await expect(t.mint.melt({ quote: quote.quote, inputs: proofs })).rejects.toThrow(
      /Lightning payment failed/,
    );
    const ys = proofs.map((p) => yOf(p.secret).slice(0, 8));
    expect(proofEvents(events)).toEqual([...ys.map((y) => `${y} PENDING`), ...ys.map((y) => `${y} UNSPENT`)]);
    expect(events.filter((e) => e.kind === 'melt_quote')).toEqual([
      { kind: 'melt_quote', id: quote.quote },
      { kind: 'melt_quote', id: quote.quote },
    ]);
    expect((await t.mint.getMeltQuote(quote.quote)).state).toBe('UNPAID');
  });
});

async function waitUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await new Promise((r) => setTimeout(r, 20));
}
