import { describe, expect, it } from 'vitest';
import { splitRefund } from '../../../src/leases/refunds.js';

const own = 'http://node/mint';
const ext = 'https://ext.example/mint';

describe('splitRefund', () => {
  it('draws on the newest payment first, whole, then on older ones', () => {
    // Started at the trusted mint (120), extended at the own mint (60): 179 back.
    expect(
      splitRefund(
        [
          { source: ext, kept: 120n },
          { source: own, kept: 60n },
        ],
        179n,
      ),
    ).toEqual([
      { source: own, amount: 60n },
      { source: ext, amount: 119n },
    ]);
    expect(
      splitRefund(
        [
          { source: own, kept: 120n },
          { source: ext, kept: 60n },
        ],
        179n,
      ),
    ).toEqual([
      { source: ext, amount: 60n },
      { source: own, amount: 119n },
    ]);
  });

  it('takes a small refund from the newest payment alone', () => {
    expect(
      splitRefund(
        [
          { source: ext, kept: 120n },
          { source: own, kept: 60n },
        ],
        30n,
      ),
    ).toEqual([{ source: own, amount: 30n }]);
  });

  it('gives one share per mint, never more than was kept there', () => {
    const payments = [
      { source: own, kept: 50n },
      { source: ext, kept: 20n },
      { source: own, kept: 10n },
      { source: ext, kept: 0n },
    ];
    expect(splitRefund(payments, 75n)).toEqual([
      { source: own, amount: 55n },
      { source: ext, amount: 20n },
    ]);
    expect(splitRefund(payments, 80n)).toEqual([
      { source: own, amount: 60n },
      { source: ext, amount: 20n },
    ]);
    expect(splitRefund(payments, 0n)).toEqual([]);
  });

  it('refuses a refund larger than everything kept', () => {
    expect(() => splitRefund([{ source: own, kept: 10n }], 11n)).toThrow(/exceeds/);
  });
});
