import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { newSealKey, sealedMove } from '../../../src/drivers/lxd/deadline-seal.js';
import { IN_INSTANCE } from '../../../src/drivers/lxd/in-instance.js';
import { debianImagesDir } from '../../helpers/test-images.js';
import { newLeaseId, sh, TEST_LIMITS, waitFor } from './compute-driver.contract.js';
import { cpuUsageNs } from './crun-target.js';
import { type LxdTarget, lxdSkipReason, makeLxdTarget } from './lxd-target.js';

/** True while a host process exists and has not exited (a zombie has). */
function processAlive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The cgroup of a host process that accounts its CPU time (cgroup v2, or v1's cpuacct). */
function cpuCgroupOf(pid: number): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  const v1 = lines.find((l) => /^\d+:[^:]*\bcpuacct\b[^:]*:/.test(l));
  return (v1 ?? lines.find((l) => l.startsWith('0::')) ?? '').replace(/^\d+:[^:]*:/, '');
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

  /**
   * What a tenant, root in its instance, tries in order to run past its deadline once no node is
   * left to stop it. Each line printed is an attempt that worked and must not have.
   */
  const oneShotAttacks = (forged: string, replayed: string, far: number) => `R=/run/alacarte
printf '%s\\n' ${far} 2>/dev/null > $R/deadline
printf '{"id":"x","expires_at":"2999-01-01T00:00:00.000Z"}\\n' 2>/dev/null > $R/lease.json
printf 'while :; do sleep 1; done\\n' 2>/dev/null > $R/bin/init.sh
printf '%s\\n' '${forged}' '${replayed}' > $R/bin/wait
( exec 4<>/proc/1/mem ) 2>/dev/null && echo "root opened /proc/1/mem"
cat /proc/1/environ 2>/dev/null && echo "root read /proc/1/environ"
( exec 4<>/proc/1/fd/3 ) 2>/dev/null && echo "root opened the FIFO init holds"
ls /proc/1/root/ 2>/dev/null | grep -q . && echo "root entered the root of init"
$R/bin/busybox nsenter -S 65533 -G 65533 -F sh -c '( exec 4<>/proc/1/mem ) 2>/dev/null && echo "the uid of init opened /proc/1/mem"'
for s in $(seq 1 64); do kill -$s 1 2>/dev/null; done
for c in /sys/fs/cgroup /sys/fs/cgroup/unified; do
  [ -e $c/cgroup.procs ] && mkdir $c/x 2>/dev/null && echo 1 2>/dev/null > $c/x/cgroup.procs && echo 1 2>/dev/null > $c/x/cgroup.freeze && echo "froze init in $c"
done
c=/sys/fs/cgroup/freezer
[ -e $c/tasks ] && mkdir $c/x 2>/dev/null && echo 1 2>/dev/null > $c/x/tasks && echo FROZEN 2>/dev/null > $c/x/freezer.state && echo "froze init in $c"
$R/bin/busybox reboot -f 2>/dev/null
grep -q '^State:.[RS]' /proc/1/status || echo "init stopped"
echo done`;

  // Runs as long as it is let: files and the FIFO rewritten, every signal to init, each second.
  const continuousAttacks = (forged: string, far: number) => `R=/run/alacarte
while :; do
  printf '%s\\n' ${far} 2>/dev/null > $R/deadline
  printf '%s\\n' '${forged}' 2>/dev/null > $R/bin/wait
  for s in 1 2 3 9 15 19 20; do kill -$s 1 2>/dev/null; done
  sleep 1
done`;

  for (const delivery of ['push', 'bind'] as const) {
    describe(`LXD deadline against its own tenant, files ${delivery === 'push' ? 'pushed' : 'bound read-only'}, node stopped`, () => {
      let t: LxdTarget;
      beforeAll(async () => {
        t = await makeLxdTarget({ delivery });
      }, 120_000);
      afterAll(async () => {
        await t?.dispose();
      });

      it('ends the instance at the deadline the node set, whatever root inside does with no node left', async () => {
        const first = Date.now() + 10_000;
        const h = await t.driver.start(
          { leaseId: newLeaseId(), image: 'busybox', command: ['sleep', '1000'] },
          TEST_LIMITS,
          new Date(first),
        );
        // An extension through the node still moves the deadline init enforces.
        const deadline = first + 12_000;
        await t.driver.setDeadline(h, new Date(deadline));
        const pid = (await t.driver.initPid(h.leaseId)) ?? 0;
        expect(pid).toBeGreaterThan(1);

        // A move with a made-up tag, and a move signed with the instance's own key (read from LXD,
        // as a tenant never can) but numbered below the node's: a move seen once, played again.
        const name = t.driver.instanceName(h.leaseId);
        const raw =
          (
            await t.options.client.get(
              `/1.0/instances/${name}`,
              z.object({ config: z.record(z.string(), z.string()) }).loose(),
            )
          ).config['raw.lxc'] ?? '';
        const key = /ALACARTE_KEY=(\S+)/.exec(raw)?.[1] ?? '';
        const far = Math.ceil(Date.now() / 1000) + 86_400 * 365;
        const forged = sealedMove(newSealKey(), far, Date.now() + 10_000_000);
        const replayed = sealedMove(key, far, 1);
        expect(key).not.toBe('');

        const attempt = await sh(t.driver, h, oneShotAttacks(forged, replayed, far));
        expect(attempt.out, `${attempt.code} ${attempt.err}`).toBe('done\n');
        // Every other process of the instance killed: init has no child or timer to lose.
        await sh(t.driver, h, 'kill -9 -1');
        expect(await t.driver.isRunning(h)).toBe(true);
        const attacker = await t.driver.exec(h, {
          command: ['sh', '-c', continuousAttacks(forged, far)],
          background: true,
          timeoutMs: 10_000,
          maxOutputBytes: 4096,
        });
        expect(attacker.pid).toBeDefined();
        if (delivery === 'push') {
          // Its own copies of the files say what it wrote; init does not read them.
          const files = await sh(t.driver, h, 'cat /run/alacarte/deadline /run/alacarte/lease.json');
          expect(files.out).toContain(String(far));
        }

        // No node from here on: nobody outside stops the instance.
        await t.driver.close();
        // Alive past the first deadline (the extension holds), gone within 5 s of the one set.
        await sleep(Math.max(0, first + 2000 - Date.now()));
        if (Date.now() < deadline - 1000) expect(processAlive(pid)).toBe(true);
        expect(await waitFor(() => !processAlive(pid), deadline + 5000 - Date.now())).toBe(true);
      }, 60_000);
    });
  }

  describe('LXD deadline against a tenant that lowers the priority of init and burns its CPU, node stopped', () => {
    let t: LxdTarget;
    beforeAll(async () => {
      t = await makeLxdTarget({ imagesDir: await debianImagesDir() });
    }, 600_000);
    // An instance that outlived its deadline (the case failed) takes long to stop.
    afterAll(async () => {
      await t?.dispose();
    }, 300_000);

    it('ends the instance within seconds of its deadline while root inside, also as the uid of init, tries to starve init in a small CPU allowance', async () => {
      const B = IN_INSTANCE.busybox;
      // As root and as init's uid (which needs no capability to lower the priority of its own
      // processes): a nice of 19 for init by its pid, its process group and its user, the idle I/O
      // class and the idle scheduling class (debian's chrt); then keep a CPU allowance of 50 ms a
      // second busy with 8 loops. Unrefused, this kept init (idle class, weight 3 against 8 x 1024)
      // alive more than 60 s past its deadline; refused, it ended within 2 s of it.
      const attack = [
        `for u in 0 ${IN_INSTANCE.initUid}; do ${B} nsenter -S $u -G $u -F ${B} sh -c "${B} renice -n 19 -p 1; ${B} renice -n 19 -g 1; ${B} renice -n 19 -u ${IN_INSTANCE.initUid}; ${B} ionice -c 3 -p 1; chrt -i -p 0 1"; done >/dev/null 2>&1`,
        'for i in 1 2 3 4 5 6 7 8; do (while :; do :; done) & done',
        'wait',
      ].join('\n');
      const deadline = Date.now() + 30_000;
      const h = await t.driver.start(
        { leaseId: newLeaseId(), image: 'debian', command: ['sh', '-c', attack] },
        { ...TEST_LIMITS, vcpu: 0.05 },
        new Date(deadline),
      );
      const pid = (await t.driver.initPid(h.leaseId)) ?? 0;
      expect(pid).toBeGreaterThan(1);
      const cgroup = cpuCgroupOf(pid);
      expect(cgroup).not.toBe('');
      // No node from here on: nobody outside stops the instance.
      await t.driver.close();
      // The attack runs and burns: the instance's CPU time grows while it lives.
      const u0 = cpuUsageNs(cgroup);
      await sleep(2000);
      if (Date.now() < deadline - 1000) {
        expect(processAlive(pid)).toBe(true);
        expect(cpuUsageNs(cgroup)).toBeGreaterThan(u0);
      }
      const gone = await waitFor(() => !processAlive(pid), deadline + 5000 - Date.now());
      expect(gone, 'the instance outlived its deadline by more than 5 s').toBe(true);
    }, 90_000);
  });
}
