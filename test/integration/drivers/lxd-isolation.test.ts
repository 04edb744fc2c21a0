import { describe, it } from 'vitest';
import { isolationContract } from './isolation.contract.js';
import { lxdQuotaPoolSkipReason, lxdSkipReason, makeLxdTarget } from './lxd-target.js';

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
  });
}
