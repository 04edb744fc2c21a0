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
  it('runs work on the same key one at a time and tells the later one it joined', async () => {
    const f = new InFlight<string>();
    const g = gate<string>();
    const order: string[] = [];
    const first = f.run(['a'], async (joined) => {
      order.push(`first joined=${joined}`);
      return g.promise;
    });
    const second = f.run(['b', 'a'], async (joined) => {
      order.push(`second joined=${joined}`);
      return 'second';
    });
    await Promise.resolve();
    expect(order).toEqual(['first joined=false']);
    g.open('first');
    expect(await first).toBe('first');
    expect(await second).toBe('second');
    expect(order).toEqual(['first joined=false', 'second joined=true']);
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
