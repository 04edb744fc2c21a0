import { afterAll, describe, expect, it } from 'vitest';
import { type LeaseTestNode, postJson, satOffer, startLeaseNode, tokens } from '../../helpers/lease-node.js';
import { waitFor } from '../drivers/compute-driver.contract.js';

/**
 * Sandboxes for the offers are made when the node starts (config `pool`, crun's warmLayers), not on
 * the first paid request: a burst on a pool that holds it takes only sandboxes made ahead.
 */
const isRoot = process.getuid?.() === 0;
const BURST = 6;
let node: LeaseTestNode | undefined;

afterAll(async () => {
  await node?.close().catch(() => {});
});

describe.skipIf(!isRoot)('sandboxes made ahead when the node starts', () => {
  it('fills the pool of every offer before any lease, and a burst it holds creates none on its path', async () => {
    const big = { ...satOffer('big', 0.1, 60), memory_mib: 64, disk_mib: 16 };
    const other = { ...satOffer('other', 0.1, 60), memory_mib: 32, disk_mib: 8 };
    node = await startLeaseNode({ offers: [big, other] }, undefined, { driver: { warmLayers: BURST } });
    const driver = node.driver;
    // Nothing rented yet: only the node's start-up asked for these.
    expect(
      await waitFor(async () => driver.madeAhead('busybox', 16).waiting === BURST, 60_000),
      JSON.stringify(driver.madeAhead('busybox', 16)),
    ).toBe(true);
    expect(await waitFor(async () => driver.madeAhead('busybox', 8).waiting === BURST, 60_000)).toBe(true);

    const { tokens: paid } = await tokens(node.mintUrl, BURST, 120);
    const body = { offer: 'big', seconds: 3600, image: 'busybox' };
    const created = await Promise.all(
      paid.map((t) => postJson(`${node!.url}/v1/leases`, body, { 'x-cashu': t.token })),
    );
    expect(created.map((c) => c.status)).toEqual(paid.map(() => 201));
    const ran = await Promise.all(
      created.map((c) =>
        postJson(
          `${node!.url}/v1/leases/${String(c.body.id)}/exec`,
          { command: ['echo', 'ready'] },
          { authorization: `Bearer ${String(c.body.token)}` },
        ),
      ),
    );
    expect(ran.map((r) => [r.status, r.body.stdout])).toEqual(paid.map(() => [200, 'ready\n']));
    expect(driver.madeAhead('busybox', 16).madeOnDemand).toBe(0);
  });
});
