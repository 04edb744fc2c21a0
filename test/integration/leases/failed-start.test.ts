import { readFileSync } from 'node:fs';
import { Wallet } from '@cashu/cashu-ts';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { AlacarteError } from '../../../src/core/errors.js';
import type { ComputeDriver } from '../../../src/drivers/compute-driver.js';
import type { CrunDriver } from '../../../src/drivers/crun/crun-driver.js';
import {
  aroundDriver,
  expectBalanced,
  type LeaseTestNode,
  ledgerOf,
  postJson,
  startLeaseNode,
  sumOf,
  tokens,
} from '../../helpers/lease-node.js';

/**
 * A failed start refunds the renter and leaves nothing running: whatever driver.start() did before
 * the start failed (it started the sandbox and its command, then failed), or when the store fails
 * right after the sandbox started, the sandbox is stopped, list() no longer shows it and its cgroup
 * holds no process.
 */
const OPERATOR = 'operator-token-for-failed-start-tests';
const nodes: LeaseTestNode[] = [];

afterAll(async () => {
  for (const n of nodes) await n.close().catch(() => {});
});

/** What the sandbox of the one start a test makes was: its lease id and cgroup. */
interface Started {
  leaseId?: string;
  cgroup?: string;
}

function recordingStart(real: CrunDriver, seen: Started, fail: boolean): Partial<ComputeDriver> {
  return {
    start: async (spec, limits, deadline) => {
      const handle = await real.start(spec, limits, deadline);
      seen.leaseId = spec.leaseId;
      seen.cgroup = real.cgroupPath(spec.leaseId);
      // As a start that timed out on our side after the runtime had in fact started the sandbox.
      if (fail) throw new AlacarteError('start_failed', 'the sandbox did not answer in time');
      return handle;
    },
  };
}

/** The pids in a cgroup (v2 or v1 pids controller); none once it is removed. */
function processesIn(cgroup: string): string[] {
  for (const file of [`/sys/fs/cgroup${cgroup}/cgroup.procs`, `/sys/fs/cgroup/pids${cgroup}/cgroup.procs`]) {
    try {
      return readFileSync(file, 'utf8').split('\n').filter(Boolean);
    } catch {
      // not this hierarchy, or removed meanwhile
    }
  }
  return [];
}

const body = { offer: 'small', seconds: 7200, image: 'busybox', command: ['sleep', '3600'] };

async function expectRefundedAndNothingRunning(
  node: LeaseTestNode,
  seen: Started,
  answer: { status: number; body: Record<string, unknown> },
) {
  expect(answer.status, JSON.stringify(answer.body)).toBe(503);
  expect(answer.body).toMatchObject({ error: 'start_failed', refunded: 128 });
  const w = new Wallet(node.mintUrl, { unit: 'sat' });
  await w.loadMint();
  expect(sumOf(await w.receive(String(answer.body.refund)))).toBe(128);

  expect(seen.leaseId).toBeDefined();
  const leaseId = String(seen.leaseId);
  expect((await node.driver.list()).map((s) => s.leaseId)).not.toContain(leaseId);
  expect(await node.driver.isRunning({ leaseId })).toBe(false);
  expect(processesIn(String(seen.cgroup))).toEqual([]);

  const books = await ledgerOf(node.url, OPERATOR);
  expect(expectBalanced(books)).toEqual([]);
  expect(books.leases.failed).toBe(1);
  expect(books.held).toBe(0);
}

describe('a failed start', () => {
  it('stops a sandbox that driver.start() started before it failed', async () => {
    const seen: Started = {};
    const node = await startLeaseNode({ operatorToken: OPERATOR }, undefined, {
      wrapDriver: (real) => aroundDriver(real, recordingStart(real, seen, true)),
    });
    nodes.push(node);
    const { tokens: pool } = await tokens(node.mintUrl, 1, 128);
    const answer = await postJson(`${node.url}/v1/leases`, body, { 'x-cashu': pool[0]!.token });
    await expectRefundedAndNothingRunning(node, seen, answer);
  });

  it('stops the sandbox when the store fails right after the sandbox started', async () => {
    const seen: Started = {};
    const node = await startLeaseNode({ operatorToken: OPERATOR }, undefined, {
      wrapDriver: (real) => aroundDriver(real, recordingStart(real, seen, false)),
    });
    nodes.push(node);
    const { tokens: pool } = await tokens(node.mintUrl, 1, 128);
    // A real failure of the store's write that makes the lease running (as a full disk would).
    await sql
      .raw(
        `CREATE TRIGGER refuse_running BEFORE UPDATE OF state ON leases WHEN NEW.state = 'running'
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`,
      )
      .execute(node.node.db);
    const answer = await postJson(`${node.url}/v1/leases`, body, { 'x-cashu': pool[0]!.token });
    await sql.raw('DROP TRIGGER refuse_running').execute(node.node.db);
    await expectRefundedAndNothingRunning(node, seen, answer);
  });
});
