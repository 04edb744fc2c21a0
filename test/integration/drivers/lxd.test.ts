import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeDriverContract, newLeaseId, sh, TEST_LIMITS, waitFor } from './compute-driver.contract.js';
import { type LxdTarget, lxdSkipReason, makeLxdTarget } from './lxd-target.js';

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
