import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SandboxId } from '../../../src/drivers/compute-driver.js';
import { newLeaseId } from './compute-driver.contract.js';
import { crunSkipReason, makeCrunTarget, removeDriverFiles } from './crun-target.js';

/** Every directory a driver instance's sandboxes have their cgroups under, in any hierarchy. */
function cgroupParentsOf(instance: string): string[] {
  const root = '/sys/fs/cgroup';
  const hierarchies = existsSync(join(root, 'cgroup.controllers')) ? [''] : readdirSync(root);
  return hierarchies.map((h) => join(root, h, 'alacarte', instance)).filter((dir) => existsSync(dir));
}

if (crunSkipReason) {
  describe.skip(`crun close: skipped, ${crunSkipReason}`, () => {
    it('runs only as root with crun and busybox-static', () => {});
  });
} else {
  describe('crun: a node that stops', () => {
    it('leaves no cgroup directory of its own in any hierarchy (the unified one of a hybrid host too)', async () => {
      const t = await makeCrunTarget();
      const instance = t.options.instance ?? '';
      const limits = { vcpu: 0.1, memoryMib: 64, pids: 32, diskMib: 8 };
      const sandbox = await t.driver.start(
        { leaseId: newLeaseId() as SandboxId, image: 'busybox' },
        limits,
        new Date(Date.now() + 600_000),
      );
      // While a sandbox runs, its cgroups are there: what the check below looks for is real.
      expect(cgroupParentsOf(instance).length).toBeGreaterThan(0);
      await t.driver.stop(sandbox);
      await t.driver.close();
      try {
        expect(cgroupParentsOf(instance)).toEqual([]);
      } finally {
        await removeDriverFiles(t.options, t.base);
      }
    }, 120_000);
  });
}
