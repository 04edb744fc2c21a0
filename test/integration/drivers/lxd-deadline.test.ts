import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newLeaseId, TEST_LIMITS, waitFor } from './compute-driver.contract.js';
import { type LxdTarget, lxdSkipReason, makeLxdTarget } from './lxd-target.js';

/** True while a host process exists and has not exited (a zombie has). */
function processAlive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

if (lxdSkipReason) {
  describe.skip(`LXD deadline without a control plane: skipped, ${lxdSkipReason}`, () => {
    it('runs only as root with lxd', () => {});
  });
} else {
  describe('LXD deadline with the control plane killed -9', () => {
    let t: LxdTarget;
    beforeAll(async () => {
      t = await makeLxdTarget();
    }, 120_000);
    afterAll(async () => {
      await t?.dispose();
    });

    it('ends the instance at its deadline with the LXD daemon itself killed -9 (and no node either)', async () => {
      const deadline = Date.now() + 6000;
      const h = await t.driver.start(
        { leaseId: newLeaseId(), image: 'busybox', command: ['sleep', '1000'] },
        TEST_LIMITS,
        new Date(deadline),
      );
      const pid = (await t.driver.initPid(h.leaseId)) ?? 0;
      expect(pid).toBeGreaterThan(1);
      await t.driver.close();
      process.kill(t.daemon.pid, 'SIGKILL');
      // Nobody is left to stop it: alive until its deadline, gone within 5 s of it.
      if (Date.now() < deadline - 1000) expect(processAlive(pid)).toBe(true);
      expect(await waitFor(() => !processAlive(pid), deadline + 5000 - Date.now())).toBe(true);
    });
  });
}
