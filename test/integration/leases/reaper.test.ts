import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
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
    // Tokens first, then the leases all at once, so that they really expire together; on a loaded
    // machine sequential creates can straddle the first lease's deadline.
    const tokens: string[] = [];
    for (let i = 0; i < n; i++) {
      const split = await tokenOf(wallet, t.mintUrl, proofs, 1);
      proofs = split.keep;
      tokens.push(split.token);
    }
    const created = await Promise.all(
      tokens.map((token) =>
        postJson(`${t.url}/v1/leases`, { offer: 'tiny', seconds: 3, image: 'busybox' }, { 'x-cashu': token }),
      ),
    );
    expect(created.map((res) => res.status)).toEqual(Array(n).fill(201));
    const leases = created.map((res) => res.body as { id: string; token: string });
    // Every lease had its sandbox: the ones not yet expired are still listed by the driver.
    const listed = new Set((await t.driver.list()).map((s) => s.leaseId));
    for (const l of leases) {
      const res = await fetch(`${t.url}/v1/leases/${l.id}`, {
        headers: { authorization: `Bearer ${l.token}` },
      });
      const { state } = (await res.json()) as { state: string };
      if (state === 'running') expect(listed.has(l.id)).toBe(true);
    }

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

describe('a command under way when its lease ends', () => {
  /** A running lease of `seconds` on the tiny offer, paid 1 sat. */
  async function rent(seconds: number): Promise<{ id: string; token: string }> {
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 1);
    const { token } = await tokenOf(wallet, t.mintUrl, proofs, 1);
    const created = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'tiny', seconds, image: 'busybox' },
      { 'x-cashu': token },
    );
    expect(created.status).toBe(201);
    return created.body as { id: string; token: string };
  }

  /** A running lease of `seconds` with an exec of `sleep 100` (up to 300 s) sent. */
  async function leaseWithExec(seconds: number) {
    const lease = await rent(seconds);
    const auth = { authorization: `Bearer ${lease.token}` };
    const sent = Date.now();
    const exec = postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      { command: ['sleep', '100'], timeout_seconds: 300 },
      auth,
    ).then((res) => ({ ...res, after: Date.now() - sent }));
    return { lease, auth, exec };
  }

  it('is answered 409 lease_not_running as soon as the lease expires, not at its own timeout', async () => {
    const { exec } = await leaseWithExec(3);
    const answer = await exec;
    expect(answer.status).toBe(409);
    expect(answer.body.error).toBe('lease_not_running');
    // The lease's 3 s and the reaper's round, far from the command's 100 s or its 300 s timeout.
    expect(answer.after).toBeLessThan(30_000);
  });

  it('is answered 409 lease_not_running as soon as the lease is stopped', async () => {
    const { lease, auth, exec } = await leaseWithExec(3600);
    // The command runs before the stop comes.
    await until('the command to run', async () => {
      const ps = await postJson(
        `${t.url}/v1/leases/${lease.id}/exec`,
        { command: ['ps', '-o', 'args'] },
        auth,
      );
      return /sleep 100\n/.test(String(ps.body.stdout)) ? true : undefined;
    });
    const stop = await postJson(`${t.url}/v1/leases/${lease.id}`, undefined, auth, 'DELETE');
    expect(stop.status).toBe(200);
    const answer = await exec;
    expect(answer.status).toBe(409);
    expect(answer.body.error).toBe('lease_not_running');
    expect(answer.after).toBeLessThan(30_000);
  });

  it('on a terminal: a last line says the lease has ended, then the terminal closes', async () => {
    const lease = await rent(3);
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/v1/leases/${lease.id}/attach`, [
      `bearer.${lease.token}`,
    ]);
    let shown = '';
    ws.on('message', (data: Buffer) => {
      shown += data.toString('utf8');
    });
    const closed = await new Promise<{ code: number; reason: string }>((resolve, reject) => {
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
      ws.once('error', reject);
    });
    expect(shown).toContain(`\r\n[alacarte] lease ${lease.id} has ended; closing the terminal.\r\n`);
    expect(closed.code).toBe(1000);
  });
});
