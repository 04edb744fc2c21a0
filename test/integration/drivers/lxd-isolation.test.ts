import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IN_INSTANCE } from '../../../src/drivers/lxd/in-instance.js';
import { isolationContract } from './isolation.contract.js';
import { lxdQuotaPoolSkipReason, lxdSkipReason, makeLxdTarget } from './lxd-target.js';

/**
 * What root inside tries, as root (`$1` 0) and as the uid of init (`$1` 65533, which the kernel
 * lets change its own processes without CAP_SYS_NICE), to starve init inside the instance's own
 * CPU allowance: a lower priority for init by its pid, its process group (1) or its user, the idle
 * I/O class, an affinity set (to the mask it has, so that only a refusal can fail it) and, with
 * util-linux where the image has it (debian: busybox renice takes no numeric user), the same by
 * init's user, the idle and batch scheduling classes and a CPU-time limit. Each line printed is an
 * attempt that worked; `own` shows the shell may still renice itself. Last, its own process group
 * (process group 0), which the rules let through: init must not be in it (checked from the host).
 */
const PRIORITY_PROBE = `B=${IN_INSTANCE.busybox}
$B renice -n 19 -p 1 && echo "$1 renice pid"
$B renice -n 19 -g 1 && echo "$1 renice pgrp"
$B ionice -c 3 -p 1 && echo "$1 ionice"
m=$($B taskset -p 1 | $B sed 's/.*: //') && $B taskset -p "$m" 1 >/dev/null && echo "$1 taskset"
if [ -x /usr/bin/chrt ] && [ -x /usr/bin/prlimit ]; then
  /usr/bin/renice -n 19 -u ${IN_INSTANCE.initUid} && echo "$1 renice user"
  /usr/bin/ionice -c 3 -u ${IN_INSTANCE.initUid} && echo "$1 ionice user"
  /usr/bin/ionice -c 3 -P 1 && echo "$1 ionice pgrp"
  /usr/bin/chrt -i -p 0 1 && echo "$1 idle"
  /usr/bin/chrt -b -p 0 1 && echo "$1 batch"
  /usr/bin/prlimit --pid 1 --cpu=1 && echo "$1 prlimit"
  /usr/bin/prlimit --pid 1 --nofile=8 && echo "$1 prlimit nofile"
fi
$B renice -n 5 -p $$ && echo "$1 own"
$B renice -n 19 -g 0 >/dev/null`;

if (lxdSkipReason) {
  describe.skip(`LXD isolation: skipped, ${lxdSkipReason}`, () => {
    it('runs only as root with lxd', () => {});
  });
} else {
  isolationContract('LXD', (imagesDir) => makeLxdTarget(imagesDir ? { imagesDir } : {}), {
    // limits.cpu.allowance is per 1000 ms: a longer window, a period of slack.
    cpu: { warmupMs: 1500, windowMs: 3000, slack: 0.1 },
    // A debian root filesystem is copied (dir pool) or snapshotted (btrfs), and its owners shifted, per instance.
    startMs: 15_000,
    // The test daemon's pool is btrfs on a loop file, which enforces the root disk size; where it
    // cannot be made the pool is `dir`, which records the size but cannot enforce it.
    known: lxdQuotaPoolSkipReason
      ? {
          'keeps writes within the disk cap': `the test LXD daemon's pool is dir, which cannot enforce disk sizes: ${lxdQuotaPoolSkipReason}`,
        }
      : {},
    extra: (ctx) => {
      it("keeps the priority, scheduling and limits of its init out of root's reach, as root and as init's uid", async () => {
        const a = await ctx.start();
        const B = IN_INSTANCE.busybox;
        let out = '';
        for (const uid of ['0', String(IN_INSTANCE.initUid)]) {
          const r = await ctx.t.driver.exec(a, {
            command: [
              B,
              'nsenter',
              '-S',
              uid,
              '-G',
              uid,
              '-F',
              B,
              'sh',
              '-c',
              `{ ${PRIORITY_PROBE}\n} 2>/dev/null`,
              'probe',
              uid,
            ],
            timeoutMs: 20_000,
            maxOutputBytes: 4096,
          });
          out += r.stdout.toString('utf8');
        }
        // Only the shells' own renice worked, under each uid.
        expect(out).toBe(`0 own\n${IN_INSTANCE.initUid} own\n`);
        // From the host: init's nice (field 19 of stat, after the parenthesised name), scheduling
        // policy (field 41) and CPU-time limit are as they were: the nice and policy of its parent,
        // LXD's monitor (a host may run everything at a nice other than 0).
        const pid = (await ctx.t.driver.initPid(a.leaseId)) ?? 0;
        expect(pid).toBeGreaterThan(1);
        const statOf = (p: number | string) =>
          readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
        const stat = statOf(pid);
        const monitor = statOf(stat[1] ?? 0);
        expect([stat[16], stat[38]]).toEqual([monitor[16], monitor[38]]);
        expect(stat[16]).not.toBe('19');
        expect(readFileSync(`/proc/${pid}/limits`, 'utf8')).toMatch(/^Max cpu time\s+unlimited\s+unlimited/m);
        expect(await ctx.t.driver.isRunning(a)).toBe(true);
      });
    },
  });
}
