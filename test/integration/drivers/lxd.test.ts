import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LxdDriver } from '../../../src/drivers/lxd/lxd-driver.js';
import { computeDriverContract, newLeaseId, sh, TEST_LIMITS, waitFor } from './compute-driver.contract.js';
import { type LxdTarget, lxdSkipReason, makeLxdTarget } from './lxd-target.js';

/** Whether something accepts TCP connections at `url` (http://127.0.0.1:N). */
function accepting(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

if (lxdSkipReason) {
  describe.skip(`LXD driver: skipped, ${lxdSkipReason}`, () => {
    it('runs only as root with lxd and busybox-static', () => {});
  });
} else {
  computeDriverContract('lxd', makeLxdTarget);
  // /run/alacarte written through LXD's file API, as on a cluster (lxd-cluster.test.ts).
  computeDriverContract('lxd, files pushed', () => makeLxdTarget({ delivery: 'push' }), {
    'shows the lease id and deadline in /run/alacarte/lease.json, read-only':
      "pushed files are the instance's own: its root can rewrite lease.json (delivery bind keeps it read-only); the case below asserts what matters, that the deadline init enforces does not move",
  });

  describe('LXD driver: the ports of a sandbox another replica started', () => {
    let t: LxdTarget;
    let other: LxdDriver;
    beforeAll(async () => {
      t = await makeLxdTarget();
      // A second replica of the node on the same daemon and runtime directory.
      other = await LxdDriver.create(t.options);
    }, 120_000);
    afterAll(async () => {
      await other?.close();
      await t?.dispose();
    });

    it('are relayed by the other replica from its first request, on a port of its own, until the instance is gone', async () => {
      const h = await t.driver.start(
        {
          leaseId: newLeaseId(),
          image: 'busybox',
          ports: [8080],
          command: ['httpd', '-f', '-p', '8080', '-h', '/etc'],
        },
        TEST_LIMITS,
        new Date(Date.now() + 120_000),
      );
      const unwatch = other.watch(() => {});
      try {
        const url = (await other.relayPort({ leaseId: h.leaseId }, 8080)) ?? '';
        // The starting replica holds the host port of its answer on this host: the other takes another.
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:[0-9]+$/);
        expect(url).not.toBe(h.ports[8080]);
        expect(await other.relayPort({ leaseId: h.leaseId }, 8080)).toBe(url);
        expect(await other.relayPort({ leaseId: h.leaseId }, 9090)).toBeUndefined();
        const page = async () =>
          (
            await fetch(`${url}/passwd`).then(
              (r) => r.text(),
              () => '',
            )
          ).slice(0, 5);
        expect(await waitFor(async () => (await page()) === 'root:', 10_000)).toBe(true);

        await t.driver.stop(h);
        // Its relay closes once the other replica sees the instance gone, whoever stopped it.
        expect(await waitFor(async () => !(await accepting(url)), 10_000)).toBe(true);
        await expect(other.relayPort({ leaseId: h.leaseId }, 8080)).rejects.toMatchObject({
          code: 'lease_not_running',
        });
      } finally {
        unwatch();
      }
    }, 90_000);
  });

  describe("LXD driver, files pushed: lease.json is the tenant's to rewrite, its deadline is not", () => {
    let t: LxdTarget;
    beforeAll(async () => {
      t = await makeLxdTarget({ delivery: 'push' });
    }, 120_000);
    afterAll(async () => {
      await t?.dispose();
    });

    it("shows the lease id and deadline in lease.json, and rewriting it, the deadline file or init's FIFO does not move the deadline", async () => {
      const deadline = new Date(Date.now() + 8000);
      const h = await t.driver.start({ leaseId: newLeaseId(), image: 'busybox' }, TEST_LIMITS, deadline);
      const shown = await sh(t.driver, h, 'cat /run/alacarte/lease.json');
      expect(JSON.parse(shown.out)).toEqual({ id: h.leaseId, expires_at: deadline.toISOString() });
      const far = Math.ceil(deadline.getTime() / 1000) + 86_400;
      const rewrite = await sh(
        t.driver,
        h,
        `R=/run/alacarte
printf '{"id":"${h.leaseId}","expires_at":"${new Date(far * 1000).toISOString()}"}\\n' > $R/lease.json
printf '${far}\\n' > $R/deadline
printf '${far} 99999999999999 1\\n' > $R/bin/wait
cat $R/lease.json $R/deadline`,
      );
      expect(rewrite.code).toBe(0);
      expect(rewrite.out).toContain(String(far));
      expect(
        await waitFor(async () => !(await t.driver.isRunning(h)), deadline.getTime() + 6000 - Date.now()),
      ).toBe(true);
    }, 60_000);
  });
}
