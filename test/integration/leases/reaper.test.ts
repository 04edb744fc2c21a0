import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../../helpers/lease-node.js';

// 1 sat buys up to an hour, so each lease below is paid with an exact 1-sat token.
const tiny = {
  id: 'tiny',
  vcpu: 0.01,
  memory_mib: 16,
  pids: 16,
  disk_mib: 1,
  price: { amount_per_hour: 1, unit: 'sat' as const },
  min_seconds: 1,
  max_seconds: 3600,
};

let t: LeaseTestNode;
beforeAll(async () => {
  t = await startLeaseNode({ offers: [tiny] });
});
afterAll(async () => {
  await t?.close();
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const give = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > give) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the reaper', () => {
  it('ends leases expiring together and removes every one of their sandboxes', async () => {
    const n = 6;
    const funded = await fundedWallet(t.mintUrl, n);
    const wallet = funded.wallet;
    let proofs = funded.proofs;
    const paid: string[] = [];
    for (let i = 0; i < n; i++) {
      const split = await tokenOf(wallet, t.mintUrl, proofs, 1);
      proofs = split.keep;
      paid.push(split.token);
    }
    // Rented at once, so they expire together; long enough to outlive their creation on a loaded
    // machine (every sandbox must be seen running before the deadline).
    const created = await Promise.all(
      paid.map((token) =>
        postJson(`${t.url}/v1/leases`, { offer: 'tiny', seconds: 5, image: 'busybox' }, { 'x-cashu': token }),
      ),
    );
    for (const res of created) expect(res.status).toBe(201);
    const leases = created.map((res) => res.body as { id: string; token: string });
    expect((await t.driver.list()).length).toBe(n);

    const states = await until('every lease to end', async () => {
      const all = await Promise.all(
        leases.map(async (l) => {
          const res = await fetch(`${t.url}/v1/leases/${l.id}`, {
            headers: { authorization: `Bearer ${l.token}` },
          });
          return ((await res.json()) as { state: string }).state;
        }),
      );
      return all.every((s) => s !== 'running') ? all : undefined;
    });
    expect(states).toEqual(Array(n).fill('expired'));

    // The sandboxes go after the state changes. Their directories are watched rather than the
    // driver's list(), which would clean up overdue sandboxes itself.
    await until('the sandboxes to be removed', async () =>
      leases.every((l) => !existsSync(join(t.dataDir, 'sandboxes', l.id))) ? true : undefined,
    );
    expect(await t.driver.list()).toEqual([]);
    for (const l of leases) {
      const exec = await postJson(
        `${t.url}/v1/leases/${l.id}/exec`,
        { command: ['true'] },
        { authorization: `Bearer ${l.token}` },
      );
      expect(exec.status).toBe(409);
      expect(exec.body.error).toBe('lease_not_running');
    }
    // Expiry refunds nothing: every lease keeps what it paid, and nothing is held any more.
    const rows = await t.node.db.selectFrom('leases').select(['state', 'refunded', 'ended_at']).execute();
    expect(rows.every((r) => r.state === 'expired' && Number(r.refunded) === 0 && r.ended_at !== null)).toBe(
      true,
    );
  });
});
