import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Wallet } from '@cashu/cashu-ts';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../../helpers/cli.js';
import {
  expectBalanced,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  startLeaseNode,
  statesOf,
  sumOf,
  tokens,
} from '../../helpers/lease-node.js';
import { NodeProcess } from '../../helpers/node-process.js';
import { waitFor } from '../drivers/compute-driver.contract.js';

/**
 * A stop answers once the refund is booked and every process of the sandbox has ended; the
 * sandbox's removal (runtime delete, unmounts) follows off the request path
 * (src/leases/teardown-queue.ts). Nothing of a stopped lease may run after its answer, and a node
 * killed with SIGKILL while removals are still queued loses no money and, once started again,
 * leaves nothing of them behind.
 */
const OPERATOR = 'operator-token-for-teardown-tests-01';

/** Processes of a cgroup (v1 pids hierarchy or v2) that have not exited. */
function livePids(cgroupPath: string): number[] {
  const files = [
    join('/sys/fs/cgroup', cgroupPath, 'cgroup.procs'),
    join('/sys/fs/cgroup/pids', cgroupPath, 'cgroup.procs'),
  ];
  const pids: number[] = [];
  for (const file of files) {
    let procs: string;
    try {
      procs = readFileSync(file, 'utf8');
    } catch {
      continue; // none, or removed by the teardown meanwhile
    }
    for (const line of procs.split('\n')) {
      const pid = Number.parseInt(line, 10);
      if (!(pid > 0)) continue;
      try {
        if (!/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) pids.push(pid);
      } catch {
        // exited
      }
    }
  }
  return pids;
}

let node: LeaseTestNode | undefined;
afterAll(async () => {
  await node?.close().catch(() => {});
});

describe('a stop', () => {
  it('answers with nothing of the sandbox running, and removes it afterwards', async () => {
    node = await startLeaseNode({ operatorToken: OPERATOR });
    const { tokens: pool } = await tokens(node.mintUrl, 1, 128);
    const body = { offer: 'small', seconds: 7200, image: 'busybox', command: ['sleep', '7200'] };
    const created = await postJson(`${node.url}/v1/leases`, body, { 'x-cashu': pool[0]!.token });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = String(created.body.id);
    const auth = { authorization: `Bearer ${String(created.body.token)}` };
    // A second process of the tenant's, started by exec, besides the lease's command.
    const bg = await postJson(
      `${node.url}/v1/leases/${id}/exec`,
      { command: ['sh', '-c', 'sleep 3600 & echo started'] },
      auth,
    );
    expect(bg.status).toBe(200);
    const driver = node.driver;
    const cgroup = driver.cgroupPath(id);
    expect(livePids(cgroup).length).toBeGreaterThanOrEqual(3); // init, the command, the exec's sleep

    const stop = await postJson(`${node.url}/v1/leases/${id}`, undefined, auth, 'DELETE');
    expect(stop.status, JSON.stringify(stop.body)).toBe(200);
    expect(stop.body.state).toBe('stopped');
    // At the answer: no process of the tenant's is left, and the lease takes no command.
    expect(livePids(cgroup)).toEqual([]);
    expect(await driver.isRunning({ leaseId: id })).toBe(false);
    const late = await postJson(`${node.url}/v1/leases/${id}/exec`, { command: ['true'] }, auth);
    expect(late.status).toBe(409);
    const w = new Wallet(node.mintUrl, { unit: 'sat' });
    await w.loadMint();
    expect(sumOf(await w.receive(String(stop.body.refund)))).toBe(Number(stop.body.refunded));

    // Afterwards the sandbox is removed: its link in the runtime directory goes.
    const runtimeDir = join(node.dataDir, 'sandboxes');
    expect(await waitFor(async () => !readdirSync(runtimeDir).includes(id), 10_000)).toBe(true);
    expect(expectBalanced(await ledgerOf(node.url, OPERATOR))).toEqual([]);
  });
});

const BURST = 16;
const quarterOffer = {
  id: 'quarter',
  vcpu: 0.25,
  memory_mib: 64,
  pids: 64,
  disk_mib: 16,
  price: { amount_per_hour: 60, unit: 'sat' },
};
const nodeProcess = new NodeProcess({
  prefix: 'teardown-crash',
  config: { offers: [quarterOffer] },
  env: { ALACARTE_OPERATOR_TOKEN: OPERATOR },
});
afterAll(() => nodeProcess.cleanup());

/** Containers crun knows for the node's instance, with their status. */
function containers(): Array<{ id: string; status: string }> {
  const out = execFileSync(
    'crun',
    ['--root', `/run/alacarte-${nodeProcess.instance}`, 'list', '--format', 'json'],
    { encoding: 'utf8' },
  );
  return JSON.parse(out.trim() || '[]') as Array<{ id: string; status: string }>;
}

describe('kill -9 while the removals of stopped leases are queued', () => {
  it('loses no money and leaves nothing of the stopped leases after a restart', async () => {
    expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
    const first = await nodeProcess.start();
    const { wallet, tokens: pool } = await tokens(first.mintUrl, BURST, 128);
    const body = { offer: 'quarter', seconds: 7200, image: 'busybox', command: ['sleep', '7200'] };

    // Every renter rents and stops at once; the node is killed once a few stops are answered, while
    // removals are queued and the rest are somewhere between payment, start and stop.
    let stops = 0;
    const killed = new Promise<void>((resolve) => first.process.once('exit', () => resolve()));
    const stopped = new Set<string>();
    const outcomes = await Promise.all(
      pool.map(async (p) => {
        try {
          const created = await postJson(`${first.url}/v1/leases`, body, { 'x-cashu': p.token });
          if (created.status !== 201) return created.status;
          const id = String(created.body.id);
          const auth = { authorization: `Bearer ${String(created.body.token)}` };
          const stop = await postJson(`${first.url}/v1/leases/${id}`, undefined, auth, 'DELETE');
          if (stop.status === 200) {
            stopped.add(id);
            if (++stops === 4) first.process.kill('SIGKILL');
          }
          return stop.status;
        } catch {
          return 'connection lost' as const;
        }
      }),
    );
    if (first.process.exitCode === null && first.process.signalCode === null) first.process.kill('SIGKILL');
    await killed;
    for (const o of outcomes) expect([200, 'connection lost']).toContain(o);
    expect(stopped.size).toBeGreaterThanOrEqual(4);

    const server = await nodeProcess.start();
    // Nothing of a stopped lease runs, and after the reconciliation no container of the node is
    // left stopped-but-not-removed: every one crun knows is running (a lease's or made ahead).
    for (const id of stopped) expect(nodeProcess.runningSandboxes()).not.toContain(id);
    expect(
      await waitFor(async () => containers().every((c) => c.status === 'running'), 10_000),
      JSON.stringify(containers()),
    ).toBe(true);
    const links = readdirSync(nodeProcess.runtimeDir).filter((e) => e.startsWith('lse_'));
    for (const id of stopped) expect(links).not.toContain(id);

    // Every token taken is a lease in the books; the books balance; a lease left running by the
    // crash has its sandbox, and nothing runs that nobody pays for.
    let taken = 0;
    for (const [i, p] of pool.entries()) {
      const states = await statesOf(wallet, p.send);
      expect(new Set(states).size, `token ${i} is partly spent: ${states}`).toBe(1);
      if (states[0] === 'SPENT') taken++;
    }
    const books = await ledgerOf(server.url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
    expect(books.received).toBe(120 * taken);
    expect(new Set(nodeProcess.runningSandboxes()).size).toBe(books.leases.running);
    expect(books.leases.stopped).toBeGreaterThanOrEqual(stopped.size);
    expect(await server.stop('SIGTERM')).toBe(0);
  });
});
