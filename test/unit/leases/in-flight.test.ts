import { describe, expect, it } from 'vitest';
import { InFlight } from '../../../src/leases/in-flight.js';

/** A promise the test settles by hand. */
function gate<T>(): { promise: Promise<T>; open: (v: T) => void; fail: (e: unknown) => void } {
  let open!: (v: T) => void;
  let fail!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    open = res;
    fail = rej;
  });
  return { promise, open, fail };
}

describe('InFlight', () => {
  it('runs work on the same key one at a time', async () => {
    const f = new InFlight<string>();
    const g = gate<string>();
    const order: string[] = [];
    const first = f.run(['a'], async () => {
      order.push('first');
      return g.promise;
    });
    const second = f.run(['b', 'a'], async () => {
      order.push('second');
      return 'second';
    });
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['first']);
    g.open('first');
    expect(await first).toBe('first');
    expect(await second).toBe('second');
    expect(order).toEqual(['first', 'second']);
  });

  it('hold() started together by many callers lets one at a time hold a key until it is released', async () => {
    const f = new InFlight<string>();
    let holding = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        const release = await f.hold(['pay/k']);
        holding++;
        most = Math.max(most, holding);
        await new Promise((r) => setImmediate(r));
        holding--;
        release();
      }),
    );
    expect(most).toBe(1);
    // Released: free again at once.
    await f.settled(['pay/k']);
    (await f.hold(['pay/k']))();
  });

  it('settled() waits for work holding any of the keys, even when it fails, and not for others', async () => {
    const f = new InFlight<string>();
    const g = gate<string>();
    const other = gate<string>();
    const running = f.run(['idem/x'], () => g.promise).catch(() => 'failed');
    void f.run(['idem/y'], () => other.promise);
    let done = false;
    const waiting = f.settled(['idem/x']).then(() => {
      done = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    g.fail(new Error('start failed'));
    await waiting;
    expect(done).toBe(true);
    expect(await running).toBe('failed');
    // Nothing holds the key any more; a key held by other work does not matter.
    await f.settled(['idem/x', 'idem/z']);
    other.open('y');
  });
});
