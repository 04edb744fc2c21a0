import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresNotices } from '../../../src/store/replica-notices.js';
import { testDatabase, testPostgresUnavailable } from '../../helpers/postgres.js';

/**
 * Replica notices on a real PostgreSQL (LISTEN/NOTIFY): a notice reaches the other replicas and not
 * its sender; a listening connection cut by the server comes back by itself and says so (so its
 * listener looks again for what it missed), and notices flow again after it.
 */
const unavailable = testPostgresUnavailable();
let url = '';
const pools: pg.Pool[] = [];
const notices: PostgresNotices[] = [];

function replica(id?: string, onError?: (message: string) => void): PostgresNotices {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pools.push(pool);
  const n = new PostgresNotices(pool, () => new pg.Client({ connectionString: url }), onError, id);
  notices.push(n);
  return n;
}

async function eventually(done: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 50));
  return done();
}

beforeAll(async () => {
  if (unavailable === undefined) url = await testDatabase();
});

afterAll(async () => {
  for (const n of notices) await n.close();
  for (const p of pools) await p.end();
});

describe.skipIf(unavailable !== undefined)(`replica notices ${unavailable ?? ''}`, () => {
  it('reach the other replicas, not the sender, and survive a cut connection', async () => {
    const a = replica();
    const b = replica();
    const heardA: string[] = [];
    const heardB: string[] = [];
    let reconnects = 0;
    a.listen('alacarte_leases', (p) => heardA.push(p));
    b.listen(
      'alacarte_leases',
      (p) => heardB.push(p),
      () => reconnects++,
    );
    await Promise.all([a.ready(), b.ready()]);
    await a.publish('alacarte_leases', 'lse_one');
    expect(await eventually(() => heardB.includes('lse_one'))).toBe(true);
    expect(heardA).toEqual([]);

    // The server ends every listening connection (as a restart or a failover would).
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where query ilike 'LISTEN%' and pid <> pg_backend_pid()",
      );
    } finally {
      await admin.end();
    }
    expect(await eventually(() => reconnects >= 1)).toBe(true);
    await b.ready();
    await a.publish('alacarte_leases', 'lse_two');
    expect(await eventually(() => heardB.includes('lse_two'))).toBe(true);
    expect(heardB).toEqual(['lse_one', 'lse_two']);
  });

  it('shows a replica present exactly while it listens, and one replica id to one process', async () => {
    const idA = 'rep_00000000000000a1';
    const idB = 'rep_ffffffff000000b2'; // high bit set: a negative bigint key
    const a = replica(idA);
    const b = replica(idB);
    expect(await b.isPresent(idA)).toBe(false);
    a.listen('alacarte_leases', () => {});
    b.listen('alacarte_leases', () => {});
    await Promise.all([a.ready(), b.ready()]);
    // Listening alone is not present yet (a replica starting up): announced, it is.
    expect(await b.isPresent(idA)).toBe(false);
    a.announce();
    b.announce();
    await Promise.all([a.ready(), b.ready()]);
    expect(await b.isPresent(idA)).toBe(true);
    expect(await a.isPresent(idB)).toBe(true);
    expect(await a.isPresent('rep_00000000000000c3')).toBe(false);

    // A second process with a copy of A's replica.id does not pass for A: it is told, and retries.
    const errors: string[] = [];
    const copy = replica(idA, (m) => errors.push(m));
    const heardByCopy: string[] = [];
    copy.listen('alacarte_leases', (p) => heardByCopy.push(p));
    copy.announce();
    await copy.ready();
    expect(errors.join('\n')).toMatch(/another session holds replica rep_00000000000000a1's presence/);

    // Refused the lock, it still hears notices.
    await b.publish('alacarte_leases', 'lse_to_copy');
    expect(await eventually(() => heardByCopy.includes('lse_to_copy'))).toBe(true);
    await copy.close();
    expect(await b.isPresent(idA)).toBe(true);

    // A gone (its listening connection closed, as when its process dies): absent for the others.
    await a.close();
    let present = true;
    for (let i = 0; i < 100 && present; i++) {
      present = await b.isPresent(idA);
      if (present) await new Promise((r) => setTimeout(r, 20));
    }
    expect(present).toBe(false);
    // A again (restarted on its data directory): present once listening.
    const again = replica(idA);
    again.listen('alacarte_leases', () => {});
    again.announce();
    await again.ready();
    expect(await b.isPresent(idA)).toBe(true);
  });

  it('refuses a notice PostgreSQL would refuse (8000 bytes), before sending it', async () => {
    await expect(replica().publish('alacarte_mint', 'x'.repeat(8000))).rejects.toThrow(/notice of/);
  });
});
