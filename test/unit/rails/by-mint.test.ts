import { describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { byMint, type OwedPart } from '../../../src/rails/payment-rail.js';

const own = 'http://127.0.0.1:8402/mint';
const ownBefore = 'http://127.0.0.1:9000/mint'; // the own mint under the address of an earlier run
const ext = 'https://ext.example/mint';
// As the Cashu rail names mints: every address but the trusted mint's is the own mint.
const mintOf = (source: string) => (source === ext ? ext : own);
const part = (purpose: OwedPart['purpose'], subject: string, amount: number, source: string): OwedPart => ({
  purpose,
  subject,
  amount: Amount.of(amount),
  source,
});
const shown = (groups: ReturnType<typeof byMint>) =>
  groups.map((g) => ({
    mint: g.mint,
    amount: g.amount.toNumber(),
    parts: g.parts.map((p) => `${p.purpose}/${p.subject}=${p.amount.toNumber()}`),
  }));

describe('byMint (what one giveBack call pays per mint)', () => {
  it('keeps the order in which parts first name a mint: a failed start’s change and home refund first', () => {
    const groups = byMint(
      [part('change', 'key1', 8, ext), part('refund', 'lse_a', 50, own), part('refund', 'lse_a', 70, ext)],
      mintOf,
    );
    expect(shown(groups)).toEqual([
      { mint: ext, amount: 78, parts: ['change/key1=8', 'refund/lse_a=70'] },
      { mint: own, amount: 50, parts: ['refund/lse_a=50'] },
    ]);
  });

  it('adds up a refund drawn at one mint under two addresses into one part (its ecash derived once)', () => {
    const groups = byMint([part('refund', 'lse_a', 60, own), part('refund', 'lse_a', 50, ownBefore)], mintOf);
    expect(shown(groups)).toEqual([{ mint: own, amount: 110, parts: ['refund/lse_a=110'] }]);
  });

  it('leaves out parts and mints that add up to nothing', () => {
    expect(shown(byMint([part('change', 'key1', 0, own), part('refund', 'lse_a', 5, ext)], mintOf))).toEqual([
      { mint: ext, amount: 5, parts: ['refund/lse_a=5'] },
    ]);
    expect(byMint([part('change', 'key1', 0, own)], mintOf)).toEqual([]);
    expect(byMint([], mintOf)).toEqual([]);
  });
});
