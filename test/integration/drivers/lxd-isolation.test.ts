import { describe, it } from 'vitest';
import { isolationContract } from './isolation.contract.js';
import { lxdSkipReason, makeLxdTarget } from './lxd-target.js';

if (lxdSkipReason) {
  describe.skip(`LXD isolation: skipped, ${lxdSkipReason}`, () => {
    it('runs only as root with lxd', () => {});
  });
} else {
  isolationContract('LXD', (imagesDir) => makeLxdTarget(imagesDir ? { imagesDir } : {}), {
    // limits.cpu.allowance is per 1000 ms: a longer window, a period of slack.
    cpu: { warmupMs: 1500, windowMs: 3000, slack: 0.1 },
    // A debian root filesystem is copied (and its owners shifted) per instance.
    startMs: 15_000,
    known: {
      'keeps writes within the disk cap':
        "LXD's dir storage pool records the root disk size but cannot enforce it (no quotas on this file system); a zfs, btrfs or lvm pool does",
    },
  });
}
