import { existsSync, readdirSync, realpathSync, rmSync } from 'node:fs';
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

    it('leaves none of its process exit listeners behind: drivers made and closed one after another do not pile them up', async () => {
      const listeners = () => process.listenerCount('exit');
      // One first: what a process keeps once (shared by every driver) is not what is counted.
      const first = await makeCrunTarget();
      await first.dispose();
      const before = listeners();
      for (let i = 0; i < 3; i++) {
        const t = await makeCrunTarget();
        // An exec makes the driver's exec FIFO directory and its spawner (each with an exit listener).
        const sandbox = await t.driver.start(
          { leaseId: newLeaseId() as SandboxId, image: 'busybox' },
          { vcpu: 0.1, memoryMib: 64, pids: 32, diskMib: 8 },
          new Date(Date.now() + 600_000),
        );
        expect(
          (await t.driver.exec(sandbox, { command: ['true'], timeoutMs: 10_000, maxOutputBytes: 1024 }))
            .exitCode,
        ).toBe(0);
        expect(listeners()).toBeGreaterThan(before);
        await t.driver.stop(sandbox);
        await t.dispose();
      }
      expect(listeners()).toBe(before);
    }, 180_000);

    it('takes another made-ahead sandbox when one lost its run state while its init still runs', async () => {
      const t = await makeCrunTarget({ warmLayers: 2 });
      try {
        const limits = { vcpu: 0.1, memoryMib: 64, pids: 32, diskMib: 8 };
        t.driver.prewarm('busybox', limits.diskMib);
        const pool = (t.driver as unknown as { pool: { waiting(i: string, d: number): number } }).pool;
        for (let i = 0; i < 600 && pool.waiting('busybox', limits.diskMib) < 2; i++)
          await new Promise((r) => setTimeout(r, 100));
        const madeAhead = readdirSync(join(t.base, 'rt')).filter((n) => /^w[0-9a-f]{12}$/.test(n));
        expect(madeAhead).toHaveLength(2);
        // What a sweep by another driver over the same directories can leave: init alive, no run state.
        for (const name of madeAhead)
          rmSync(realpathSync(join(t.base, 'rt', name, 'run')), { recursive: true });
        const s = await t.driver.start(
          { leaseId: newLeaseId() as SandboxId, image: 'busybox' },
          limits,
          new Date(Date.now() + 600_000),
        );
        const r = await t.driver.exec(s, {
          command: ['echo', 'started'],
          timeoutMs: 20_000,
          maxOutputBytes: 1024,
        });
        expect(r.stdout.toString()).toBe('started\n');
        await t.driver.stop(s);
      } finally {
        await t.dispose();
      }
    }, 120_000);
  });
}
