import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wallet } from '@cashu/cashu-ts';
import { afterAll, describe, expect, it } from 'vitest';
import { newLeaseId } from '../../../src/core/ids.js';
import {
  expectBalanced,
  freePort,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  startLeaseNode,
  sumOf,
  tokens,
} from '../../helpers/lease-node.js';

/**
 * Reconciliation at start-up (ARCHITECTURE.md rule 5), in-process: a node goes down with its
 * sandboxes still running; meanwhile one sandbox vanishes and one nobody paid for appears. The
 * node that comes back on the same data directory and URL keeps the paid one, stops the unpaid
 * one, and ends the vanished lease with the unused time refunded.
 */
const OPERATOR = 'operator-token-for-reconcile-tests-0';
const dataDir = mkdtempSync(join(tmpdir(), 'alacarte-reconcile-'));
chmodSync(dataDir, 0o711);
const now = Date.now();
const nodes: LeaseTestNode[] = [];

afterAll(async () => {
  for (const n of nodes.reverse()) await n.close().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
});

const body = { offer: 'small', seconds: 7200, image: 'busybox' };
const auth = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });

describe('restart reconciliation', () => {
  it('keeps paid sandboxes, stops unpaid ones, refunds leases whose sandbox vanished', async () => {
    const port = await freePort();
    // Fixed ports (HTTP and SSH), so that the restarted node answers with the same URLs.
    const config = { operatorToken: OPERATOR, port, ssh: { port: await freePort() } };
    const first = await startLeaseNode(config, dataDir, { clock: () => new Date(now) });
    nodes.push(first);
    const { tokens: pool } = await tokens(first.mintUrl, 2, 128);
    const kept = await postJson(`${first.url}/v1/leases`, body, { 'x-cashu': pool[0]!.token });
    const lost = await postJson(`${first.url}/v1/leases`, body, { 'x-cashu': pool[1]!.token });
    expect([kept.status, lost.status]).toEqual([201, 201]);

    // While the node is down: one sandbox dies, another appears that no lease paid for.
    await first.driver.stop({ leaseId: String(lost.body.id) });
    const orphan = newLeaseId();
    await first.driver.start(
      { leaseId: orphan, image: 'busybox' },
      { vcpu: 1, memoryMib: 64, pids: 64, diskMib: 16 },
      new Date(Date.now() + 3600_000),
    );
    expect((await first.driver.list()).map((s) => s.leaseId).sort()).toEqual(
      [String(kept.body.id), orphan].sort(),
    );
    await first.close({ keepSandboxes: true });
    nodes.pop();

    const second = await startLeaseNode(config, dataDir, { clock: () => new Date(now) });
    nodes.push(second);
    expect(second.url).toBe(first.url);
    expect((await second.driver.list()).map((s) => s.leaseId)).toEqual([kept.body.id]);

    // The paid sandbox still answers; its payment replays to the same first answer.
    const exec = await postJson(
      `${second.url}/v1/leases/${kept.body.id}/exec`,
      { command: ['cat', '/run/alacarte/lease.json'] },
      auth(kept.body.token),
    );
    expect(exec.status).toBe(200);
    expect(String(exec.body.stdout)).toContain(String(kept.body.id));
    const replay = await postJson(`${second.url}/v1/leases`, body, { 'x-cashu': pool[0]!.token });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(kept.body);

    // The vanished one is stopped, and its unused time (all of it: the clock stood still) comes back.
    const status = await fetch(`${second.url}/v1/leases/${lost.body.id}`, { headers: auth(lost.body.token) });
    expect(((await status.json()) as { state: string }).state).toBe('stopped');
    const stop = await postJson(
      `${second.url}/v1/leases/${lost.body.id}`,
      undefined,
      auth(lost.body.token),
      'DELETE',
    );
    expect(stop.status).toBe(200);
    expect(stop.body).toMatchObject({ state: 'stopped', refunded: 120 });
    const w = new Wallet(second.mintUrl, { unit: 'sat' });
    await w.loadMint();
    expect(sumOf(await w.receive(String(stop.body.refund)))).toBe(120);

    const books = await ledgerOf(second.url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
    expect(books).toMatchObject({ received: 240, refunded: 120, held: 120, charged: 0 });
    expect(books.leases).toMatchObject({ running: 1, stopped: 1 });
  });
});
