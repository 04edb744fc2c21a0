import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type DeadlineNotice, DeadlineNotices, noticeText } from '../../../src/leases/deadline-notices.js';

describe('deadline notices', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2030-01-01T12:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const at = (minutes: number) => new Date(Date.parse('2030-01-01T12:00:00Z') + minutes * 60_000);

  function notices(deadlines: Map<string, Date>) {
    return new DeadlineNotices({ deadlineOf: async (id) => deadlines.get(id) });
  }

  it('tells 5 minutes and 1 minute before the deadline, once each', async () => {
    const n = notices(new Map([['lse_a', at(10)]]));
    const seen: DeadlineNotice[] = [];
    n.subscribe('lse_a', (x) => seen.push(x));
    await vi.advanceTimersByTimeAsync(5 * 60_000 - 1);
    expect(seen).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(seen.map((x) => x.secondsLeft)).toEqual([300]);
    expect(seen[0]?.text).toBe(
      '\r\n[alacarte] this lease ends in 5 minutes (12:10:00 UTC); to keep it: alacarte extend lse_a --for 1h\r\n',
    );
    await vi.advanceTimersByTimeAsync(4 * 60_000);
    expect(seen.map((x) => x.secondsLeft)).toEqual([300, 60]);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(seen).toHaveLength(2);
  });

  it('re-arms after an extension, and skips offsets already past when watching starts', async () => {
    const deadlines = new Map([['lse_b', at(3)]]);
    const n = notices(deadlines);
    const seen: number[] = [];
    n.subscribe('lse_b', (x) => seen.push(x.secondsLeft));
    await vi.advanceTimersByTimeAsync(2 * 60_000);
    expect(seen).toEqual([60]); // 5 minutes before was already past
    deadlines.set('lse_b', at(33));
    n.deadlineChanged('lse_b');
    await vi.advanceTimersByTimeAsync(28 * 60_000);
    expect(seen).toEqual([60, 300]);
    await vi.advanceTimersByTimeAsync(4 * 60_000);
    expect(seen).toEqual([60, 300, 60]);
  });

  it('every subscriber of a lease hears, none after unsubscribing, and nothing stays armed', async () => {
    const n = notices(new Map([['lse_c', at(6)]]));
    const one: number[] = [];
    const two: number[] = [];
    const offOne = n.subscribe('lse_c', (x) => one.push(x.secondsLeft));
    const offTwo = n.subscribe('lse_c', (x) => two.push(x.secondsLeft));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(one).toEqual([300]);
    expect(two).toEqual([300]);
    offOne();
    await vi.advanceTimersByTimeAsync(4 * 60_000);
    expect(one).toEqual([300]);
    expect(two).toEqual([300, 60]);
    offTwo();
    expect(n.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('says nothing for a lease without a deadline, and copes with deadlines weeks away', async () => {
    const n = notices(new Map([['lse_far', at(30 * 24 * 60)]]));
    const seen: number[] = [];
    n.subscribe('lse_gone', (x) => seen.push(x.secondsLeft));
    n.subscribe('lse_far', (x) => seen.push(x.secondsLeft));
    await vi.advanceTimersByTimeAsync(30 * 24 * 60 * 60_000);
    expect(seen).toEqual([300, 60]);
  });

  it('takes its offsets from its options', async () => {
    const n = new DeadlineNotices({ deadlineOf: async () => at(1), offsetsMs: [30_000, 50_000] });
    const seen: number[] = [];
    n.subscribe('lse_d', (x) => seen.push(x.secondsLeft));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(seen).toEqual([50, 30]);
  });

  it('words the time left', () => {
    expect(noticeText('lse_x', at(1), 60)).toContain('ends in 1 minute (');
    expect(noticeText('lse_x', at(1), 57)).toContain('ends in 57 seconds');
    expect(noticeText('lse_x', at(1), 110)).toContain('ends in 2 minutes');
  });
});
