import { Wallet } from '@cashu/cashu-ts';
import { afterAll, describe, expect, it } from 'vitest';
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
import { waitFor } from '../drivers/compute-driver.contract.js';

/**
 * A stopped lease's refund is booked before its sandbox is removed (src/leases/README.md): when
 * the removal fails, the renter still gets the 200 with the refund, and the sandbox does not run on
 * to its old deadline: the reconciler removes it shortly after.
 */
const OPERATOR = 'operator-token-for-stop-removal-tests';
let node: LeaseTestNode | undefined;

afterAll(async () => {
  await node?.close().catch(() => {});
});

describe('a stop whose sandbox removal fails once', () => {
  it('answers the refund and removes the sandbox on a retry', async () => {
    let failures = 1;
    node = await startLeaseNode({ operatorToken: OPERATOR }, undefined, {
      wrapDriver: (real) =>
        aroundDriver(real, {
          stop: async (sandbox) => {
            if (failures-- > 0) throw new Error('runtime delete failed: device or resource busy');
            return real.stop(sandbox);
          },
        }),
    });
    const { tokens: pool } = await tokens(node.mintUrl, 1, 128);
    const body = { offer: 'small', seconds: 7200, image: 'busybox', command: ['sleep', '7200'] };
    const created = await postJson(`${node.url}/v1/leases`, body, { 'x-cashu': pool[0]!.token });
    expect(created.status).toBe(201);
    const id = String(created.body.id);
    const auth = { authorization: `Bearer ${String(created.body.token)}` };

    const stop = await postJson(`${node.url}/v1/leases/${id}`, undefined, auth, 'DELETE');
    expect(stop.status, JSON.stringify(stop.body)).toBe(200);
    expect(stop.body.state).toBe('stopped');
    const refunded = Number(stop.body.refunded);
    expect(refunded).toBeGreaterThanOrEqual(118); // the unused time of 2 h at 60 sat/h
    const w = new Wallet(node.mintUrl, { unit: 'sat' });
    await w.loadMint();
    expect(sumOf(await w.receive(String(stop.body.refund)))).toBe(refunded);

    const driver = node.driver;
    expect(await waitFor(async () => !(await driver.isRunning({ leaseId: id })), 10_000)).toBe(true);
    expect((await driver.list()).map((s) => s.leaseId)).not.toContain(id);
    expect(expectBalanced(await ledgerOf(node.url, OPERATOR))).toEqual([]);
  });
});
