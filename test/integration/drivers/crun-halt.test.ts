import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { newLeaseId, sh, TEST_LIMITS } from './compute-driver.contract.js';
import { cgroupFile, crunSkipReason, makeCrunTarget, readCgroup } from './crun-target.js';

/** True while `pid` runs (a zombie counts as ended). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/**
 * halt() (compute-driver.ts): a stopped lease is answered once nothing of its sandbox runs, before
 * its removal. It kills init (which ends the sandbox's pid namespace) and whatever else is in the
 * sandbox's cgroup without having entered the namespace.
 */
describe.skipIf(crunSkipReason)('crun halt', () => {
  it('ends init, every process of the sandbox and one that joined its cgroup from outside; the removal still works after', async () => {
    const t = await makeCrunTarget();
    const leaseId = newLeaseId();
    const outsider = spawn('sleep', ['600'], { stdio: 'ignore' });
    try {
      const h = await t.driver.start(
        { leaseId, image: 'busybox' },
        TEST_LIMITS,
        new Date(Date.now() + 120_000),
      );
      // Twenty processes in the background, each in its own session: none is init's direct child.
      const started = await sh(
        t.driver,
        h,
        'for i in $(seq 20); do setsid sleep 600 </dev/null >/dev/null 2>&1 & done; echo ok',
      );
      expect(started.out).toBe('ok\n');
      const path = t.driver.cgroupPath(leaseId);
      // A host process moved into the sandbox's cgroup (not its namespaces).
      const pid = outsider.pid as number;
      writeFileSync(cgroupFile('pids', path, 'cgroup.procs'), String(pid));
      const inside = readCgroup('pids', path, 'cgroup.procs').split('\n').filter(Boolean).map(Number);
      expect(inside).toContain(pid);
      expect(inside.length).toBeGreaterThanOrEqual(22);
      await t.driver.halt?.(h);
      expect(await t.driver.isRunning(h)).toBe(false);
      expect(inside.filter(alive)).toEqual([]);
      expect(readCgroup('pids', path, 'cgroup.procs').trim()).toBe('');
      // Halting again is fine; the removal after it leaves nothing of the sandbox.
      await t.driver.halt?.(h);
      await t.driver.stop(h);
      expect(await t.driver.list()).toEqual([]);
    } finally {
      outsider.kill('SIGKILL');
      await t.dispose();
    }
  });
});

/**
 * Removals asked for together go to the runtime in one `delete --regex` (batched-delete.ts): each
 * stopped sandbox is gone from the runtime and the host, and a sandbox still leased is left as it
 * was.
 */
describe.skipIf(crunSkipReason)('crun stops at once', () => {
  it('removes every stopped sandbox and nothing else', async () => {
    const t = await makeCrunTarget();
    try {
      const deadline = new Date(Date.now() + 120_000);
      const start = () => t.driver.start({ leaseId: newLeaseId(), image: 'busybox' }, TEST_LIMITS, deadline);
      const stopped = await Promise.all([1, 2, 3, 4].map(start));
      const kept = await start();
      // The runtime's id of a lease's container: the driver's instance, then the name its link gives.
      const containerOf = (leaseId: string) =>
        `${t.options.instance}-${readlinkSync(join(t.options.runtimeDir, leaseId))}`;
      const stoppedIds = stopped.map((h) => containerOf(h.leaseId));
      const keptId = containerOf(kept.leaseId);
      const containers = () => readdirSync(t.options.stateDir ?? '');
      expect(containers()).toEqual(expect.arrayContaining([...stoppedIds, keptId]));
      await Promise.all(stopped.map((h) => t.driver.stop(h)));
      for (const h of stopped) expect(await t.driver.isRunning(h)).toBe(false);
      expect(containers().filter((id) => stoppedIds.includes(id))).toEqual([]);
      expect(containers()).toContain(keptId);
      expect((await t.driver.list()).map((l) => l.leaseId)).toEqual([kept.leaseId]);
      expect((await sh(t.driver, kept, 'echo alive')).out).toBe('alive\n');
    } finally {
      await t.dispose();
    }
  });
});
