import { describe, expect, it } from 'vitest';
import { HolderLink } from '../../../src/leases/holder-link.js';
import { silentLogger } from '../../../src/log.js';
import type { NoticeChannel, ReplicaNotices } from '../../../src/store/replica-notices.js';

/**
 * The asking side of HolderLink over an in-process stand-in for PostgreSQL's LISTEN/NOTIFY (the
 * real one: test/integration/replicas): what the holder answers, and when, decides whether an
 * extension or a stop may be answered.
 */
class Bus {
  readonly sent: Array<{ channel: NoticeChannel; payload: string }> = [];
  private readonly listeners = new Map<NoticeChannel, Array<(p: string) => void>>();
  present = new Set<string>();

  notices(): ReplicaNotices {
    return {
      shared: true,
      publish: async (channel, payload) => {
        this.sent.push({ channel, payload });
      },
      listen: (channel, on) => {
        this.listeners.set(channel, [...(this.listeners.get(channel) ?? []), on]);
        return () => {};
      },
      ready: async () => {},
      announce: () => {},
      isPresent: async (replica) => this.present.has(replica),
      close: async () => {},
    };
  }

  /** The holder's answer arriving. */
  answer(payload: string): void {
    for (const on of this.listeners.get('alacarte_lease_synced') ?? []) on(payload);
  }
}

function linked(answerMs = 200) {
  const bus = new Bus();
  const link = new HolderLink({ notices: bus.notices(), log: silentLogger(), answerMs });
  link.start(
    () => {},
    () => {},
  );
  return { bus, link };
}

describe('HolderLink', () => {
  it('waits for the holder to have at least the deadline asked, or the end', async () => {
    const { bus, link } = linked(2000);
    const asked = link.ask('lse_a', 5000);
    await new Promise((r) => setTimeout(r, 0)); // its presence check, then the notice
    expect(bus.sent).toEqual([{ channel: 'alacarte_leases', payload: 'lse_a' }]);
    let done: boolean | undefined;
    void asked.then((ok) => {
      done = ok;
    });
    bus.answer('lse_a 4999'); // an older deadline (an earlier extension's): not this one
    bus.answer('lse_b 9999'); // another lease
    bus.answer('lse_a junk');
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBeUndefined();
    bus.answer('lse_a 5000');
    expect(await asked).toBe(true);

    const ended = link.ask('lse_c', 7000);
    bus.answer('lse_c ended'); // the lease ended meanwhile: the answer shows that
    expect(await ended).toBe(true);
    const stop = link.ask('lse_d', 'ended');
    bus.answer('lse_d 99999'); // a deadline is no end
    bus.answer('lse_d ended');
    expect(await stop).toBe(true);
  });

  it('gives up after its bound when no answer comes, and forgets the waiter', async () => {
    const { bus, link } = linked(100);
    const started = Date.now();
    expect(await link.ask('lse_a', 1)).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    bus.answer('lse_a 5'); // too late: nothing is waiting, nothing breaks
    expect((link as unknown as { waiting: Map<string, unknown> }).waiting.size).toBe(0);
  });

  it('refuses before money moves when the holder is not present', async () => {
    const { bus, link } = linked();
    await expect(link.requirePresent('rep_00000000000000a1')).rejects.toMatchObject({
      code: 'replica_unavailable',
      status: 503,
      headers: { 'retry-after': '5' },
    });
    bus.present.add('rep_00000000000000a1');
    await expect(link.requirePresent('rep_00000000000000a1')).resolves.toBeUndefined();
    // Rows from before the replica column: not checked.
    await expect(link.requirePresent('')).resolves.toBeUndefined();
  });
});
