import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
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
