import { describe, expect, it } from 'vitest';
import { BatchedDelete, exactIds } from '../../../../src/drivers/crun/batched-delete.js';

/** A runtime whose calls are recorded, each taking a turn of the event loop or until released. */
function fakeRuntime(failMany = false, failOne: string[] = []) {
  const calls: string[][] = [];
  let release: (() => void) | undefined;
  let held = false;
  const wait = () =>
    held ? new Promise<void>((r) => (release = r)) : new Promise<void>((r) => setImmediate(r));
  const batch = new BatchedDelete(
    async (ids) => {
      calls.push([...ids]);
      await wait();
      return !failMany;
    },
    async (id) => {
      calls.push([id]);
      await wait();
      if (failOne.includes(id)) throw new Error(`crun delete failed: ${id} is busy`);
    },
  );
  return {
    batch,
    calls,
    hold: () => {
      held = true;
    },
    release: () => {
      held = false;
      release?.();
    },
  };
}

describe('batched runtime deletes', () => {
  it('deletes one container alone, and those asked for in one turn in one call', async () => {
    const rt = fakeRuntime();
    await rt.batch.delete('a-1');
    expect(rt.calls).toEqual([['a-1']]);
    await Promise.all(['a-2', 'a-3', 'a-4'].map((id) => rt.batch.delete(id)));
    expect(rt.calls).toEqual([['a-1'], ['a-2', 'a-3', 'a-4']]);
  });

  it('gathers what is asked for while a call runs into the next, a repeated id once', async () => {
    const rt = fakeRuntime();
    rt.hold();
    const first = rt.batch.delete('a-1');
    await new Promise((r) => setImmediate(r));
    const later = ['a-2', 'a-3', 'a-2'].map((id) => rt.batch.delete(id));
    expect(rt.calls).toEqual([['a-1']]);
    rt.release();
    await Promise.all([first, ...later]);
    expect(rt.calls).toEqual([['a-1'], ['a-2', 'a-3']]);
  });

  it('redoes a failed call one container at a time, each caller hearing its own outcome', async () => {
    const rt = fakeRuntime(true, ['a-2']);
    const outcomes = await Promise.allSettled(['a-1', 'a-2', 'a-3'].map((id) => rt.batch.delete(id)));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((outcomes[1] as PromiseRejectedResult).reason)).toContain('a-2 is busy');
    expect(rt.calls).toEqual([['a-1', 'a-2', 'a-3'], ['a-1'], ['a-2'], ['a-3']]);
  });

  it('matches exactly the ids given, none that merely starts or ends like one', () => {
    const re = new RegExp(exactIds(['a1-w0f', 'a1-w1.x', 'b(c)|d']));
    expect(['a1-w0f', 'a1-w1.x', 'b(c)|d'].every((id) => re.test(id))).toBe(true);
    expect(['a1-w0f0', 'xa1-w0f', 'a1-w1yx', 'b(c)', 'd', 'bc'].some((id) => re.test(id))).toBe(false);
  });
});
