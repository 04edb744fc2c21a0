import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Wallet } from '@cashu/cashu-ts';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, type ServedNode } from '../../helpers/cli.js';
import { allSpent, expectBalanced, ledgerOf, postJson, sumOf, tokens } from '../../helpers/lease-node.js';
import { NodeProcess, QUARTER_OFFER } from '../../helpers/node-process.js';
import { waitFor } from '../drivers/compute-driver.contract.js';

/**
 * What the store says and what the sandbox does never disagree (src/leases/README.md), with the
 * built server killed with SIGKILL and started again on the same data directory and port:
 * - an extension whose deadline write into the sandbox fails is not answered 200 until the sandbox
 *   has the new deadline; after a restart the sandbox has the store's deadline and a retry of the
 *   same payment answers the extended lease;
 * - a sandbox killed from the host ends its lease within seconds, its unused time refundable,
 *   whether the node runs at that time or is down and restarted.
 */
const OPERATOR = 'operator-token-for-sandbox-sync-tests';
const body = { offer: 'quarter', seconds: 7200, image: 'busybox', command: ['sleep', '7200'] }; // 120 sat
const nodeProcess = new NodeProcess({
  prefix: 'sandbox-sync',
  config: {
    offers: [
      QUARTER_OFFER,
      {
        id: 'brief',
        vcpu: 0.25,
        memory_mib: 64,
        pids: 64,
        disk_mib: 16,
        min_seconds: 1,
        price: { amount_per_hour: 3600, unit: 'sat' }, // 1 sat a second
      },
    ],
  },
  env: { ALACARTE_OPERATOR_TOKEN: OPERATOR },
});
const runtimeDir = nodeProcess.runtimeDir;

afterAll(() => nodeProcess.cleanup());

const auth = (credential: string) => ({ authorization: `Bearer ${credential}` });

async function rent(node: ServedNode): Promise<{ id: string; credential: string; expiresAt: number }> {
  const { tokens: pool } = await tokens(node.mintUrl, 1, 128);
  const created = await postJson(`${node.url}/v1/leases`, body, { 'x-cashu': pool[0]!.token });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return {
    id: String(created.body.id),
    credential: String(created.body.token),
    expiresAt: Date.parse(String(created.body.expires_at)),
  };
}

async function leaseOf(node: ServedNode, id: string, credential: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${node.url}/v1/leases/${id}`, { headers: auth(credential) });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

/** Kills the sandbox's init (its PID 1) from the host, as the OOM killer or an operator would. */
function killInit(id: string): void {
  const pid = Number.parseInt(readFileSync(join(runtimeDir, id, 'init.pid'), 'utf8'), 10);
  expect(pid).toBeGreaterThan(1);
  process.kill(pid, 'SIGKILL');
}

/** DELETE after the sandbox died: the unused time (nearly all of the 2 h) comes back as ecash. */
async function expectUnusedTimeRefunded(node: ServedNode, id: string, credential: string): Promise<void> {
  const stop = await postJson(`${node.url}/v1/leases/${id}`, undefined, auth(credential), 'DELETE');
  expect(stop.status, JSON.stringify(stop.body)).toBe(200);
  expect(stop.body.state).toBe('stopped');
  const refunded = Number(stop.body.refunded);
  // 60 sat an hour for the unused whole seconds: at most 120, less the few seconds it ran.
  expect(refunded).toBeGreaterThanOrEqual(115);
  expect(refunded).toBeLessThanOrEqual(120);
  const w = new Wallet(node.mintUrl, { unit: 'sat' });
  await w.loadMint();
  expect(sumOf(await w.receive(String(stop.body.refund)))).toBe(refunded);
  expect(nodeProcess.runningSandboxes()).not.toContain(id);
  expect(expectBalanced(await ledgerOf(node.url, OPERATOR))).toEqual([]);
}

describe('store and sandbox agree', () => {
  it('an extension whose deadline write fails: never 200 before the sandbox has it; fixed after kill -9', async () => {
    expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
    let node = await nodeProcess.start();
    const lease = await rent(node);
    const ext = await tokens(node.mintUrl, 1, 64); // 3600 s cost 60 sat: change 4
    const extend = (n: ServedNode) =>
      postJson(
        `${n.url}/v1/leases/${lease.id}/extend`,
        { seconds: 3600 },
        { 'x-cashu': ext.tokens[0]!.token },
      );

    // The deadline write fails for real: the host replaces lease.json by a rename, and a directory
    // now stands in its place.
    const leaseFile = join(runtimeDir, lease.id, 'run', 'lease.json');
    const deadlineFile = join(runtimeDir, lease.id, 'run', 'deadline');
    rmSync(leaseFile);
    mkdirSync(leaseFile);
    const first = await extend(node);
    expect(first.status, JSON.stringify(first.body)).toBe(429);
    expect(first.body.error).toBe('rate_limited');
    expect(await allSpent(ext.wallet, ext.tokens[0]!.send)).toBe(true);
    // The sandbox still ends at its first deadline, so a retry must not answer 200.
    expect(readFileSync(deadlineFile, 'utf8').trim()).toBe(String(Math.ceil(lease.expiresAt / 1000)));
    const retry = await extend(node);
    expect(retry.status, JSON.stringify(retry.body)).toBe(429);

    await nodeProcess.kill();
    rmdirSync(leaseFile); // the fault is gone; the sandbox still has its old deadline
    node = await nodeProcess.start();

    const extended = lease.expiresAt + 3600_000;
    expect(Date.parse(String((await leaseOf(node, lease.id, lease.credential)).expires_at))).toBe(extended);
    const inside = await postJson(
      `${node.url}/v1/leases/${lease.id}/exec`,
      { command: ['cat', '/run/alacarte/lease.json'] },
      auth(lease.credential),
    );
    expect(inside.status, JSON.stringify(inside.body)).toBe(200);
    const seen = JSON.parse(String(inside.body.stdout)) as { id: string; expires_at: string };
    expect(seen.id).toBe(lease.id);
    expect(Date.parse(seen.expires_at)).toBe(extended);
    expect(readFileSync(deadlineFile, 'utf8').trim()).toBe(String(Math.ceil(extended / 1000)));

    const replay = await extend(node);
    expect(replay.status, JSON.stringify(replay.body)).toBe(200);
    expect(replay.body.state).toBe('running');
    expect(Date.parse(String(replay.body.expires_at))).toBe(extended);
    const w = new Wallet(node.mintUrl, { unit: 'sat' });
    await w.loadMint();
    expect(sumOf(await w.receive(String(replay.body.change)))).toBe(4);

    const books = await ledgerOf(node.url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
    expect(books.held).toBe(180);
    const stop = await postJson(
      `${node.url}/v1/leases/${lease.id}`,
      undefined,
      auth(lease.credential),
      'DELETE',
    );
    expect(stop.status).toBe(200);
  });

  it('a deadline write that failed is retried while the node runs', async () => {
    const node = nodeProcess.server ?? (await nodeProcess.start());
    const lease = await rent(node);
    const ext = await tokens(node.mintUrl, 1, 64);
    const extend = () =>
      postJson(
        `${node.url}/v1/leases/${lease.id}/extend`,
        { seconds: 3600 },
        { 'x-cashu': ext.tokens[0]!.token },
      );
    const leaseFile = join(runtimeDir, lease.id, 'run', 'lease.json');
    rmSync(leaseFile);
    mkdirSync(leaseFile);
    expect((await extend()).status).toBe(429);
    rmdirSync(leaseFile);
    const extended = lease.expiresAt + 3600_000;
    const deadlineFile = join(runtimeDir, lease.id, 'run', 'deadline');
    // No request needed: the reconciler writes it again on its own.
    expect(
      await waitFor(
        () => readFileSync(deadlineFile, 'utf8').trim() === String(Math.ceil(extended / 1000)),
        10_000,
      ),
    ).toBe(true);
    const replay = await extend();
    expect(replay.status, JSON.stringify(replay.body)).toBe(200);
    expect(Date.parse(String(replay.body.expires_at))).toBe(extended);
    await postJson(`${node.url}/v1/leases/${lease.id}`, undefined, auth(lease.credential), 'DELETE');
  });

  it('a deadline write that never lands: the sandbox ends at its old deadline, the lease ends refunded', async () => {
    const node = nodeProcess.server ?? (await nodeProcess.start());
    const { tokens: pool } = await tokens(node.mintUrl, 1, 4);
    const created = await postJson(
      `${node.url}/v1/leases`,
      { offer: 'brief', seconds: 4, image: 'busybox' },
      { 'x-cashu': pool[0]!.token },
    );
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = String(created.body.id);
    const credential = String(created.body.token);
    const ext = await tokens(node.mintUrl, 1, 60);
    const extend = () =>
      postJson(`${node.url}/v1/leases/${id}/extend`, { seconds: 60 }, { 'x-cashu': ext.tokens[0]!.token });
    const leaseFile = join(runtimeDir, id, 'run', 'lease.json');
    rmSync(leaseFile);
    mkdirSync(leaseFile);
    expect((await extend()).status).toBe(429);
    // The sandbox ends at its first deadline (4 s); the store said 64 s: the lease ends early, and
    // the time it did not get comes back.
    const ended = await waitFor(
      async () => (await leaseOf(node, id, credential)).state !== 'running',
      20_000,
    );
    expect(ended).toBe(true);
    expect((await leaseOf(node, id, credential)).state).toBe('stopped');
    const replay = await extend();
    expect(replay.status, JSON.stringify(replay.body)).toBe(200);
    expect(replay.body.state).toBe('stopped');
    const stop = await postJson(`${node.url}/v1/leases/${id}`, undefined, auth(credential), 'DELETE');
    expect(stop.status, JSON.stringify(stop.body)).toBe(200);
    const refunded = Number(stop.body.refunded);
    expect(refunded).toBeGreaterThanOrEqual(45); // most of the 60 paid seconds, at 1 sat a second
    expect(refunded).toBeLessThanOrEqual(64);
    const w = new Wallet(node.mintUrl, { unit: 'sat' });
    await w.loadMint();
    expect(sumOf(await w.receive(String(stop.body.refund)))).toBe(refunded);
    expect(expectBalanced(await ledgerOf(node.url, OPERATOR))).toEqual([]);
  });

  it('a sandbox killed from the host while the node runs: the lease ends within seconds, unused time refunded', async () => {
    const node = nodeProcess.server ?? (await nodeProcess.start());
    const lease = await rent(node);
    killInit(lease.id);
    const ended = await waitFor(
      async () => (await leaseOf(node, lease.id, lease.credential)).state !== 'running',
      10_000,
    );
    expect(ended).toBe(true);
    expect((await leaseOf(node, lease.id, lease.credential)).state).toBe('stopped');
    await expectUnusedTimeRefunded(node, lease.id, lease.credential);
  });

  it('a sandbox killed from the host while the node is down: ended at restart, unused time refunded', async () => {
    let node = nodeProcess.server ?? (await nodeProcess.start());
    const lease = await rent(node);
    await nodeProcess.kill();
    killInit(lease.id);
    node = await nodeProcess.start();
    expect((await leaseOf(node, lease.id, lease.credential)).state).toBe('stopped');
    await expectUnusedTimeRefunded(node, lease.id, lease.credential);
    expect(await node.stop('SIGTERM')).toBe(0);
    nodeProcess.server = undefined;
  });
});
