import { describe, it } from 'vitest';
import { backgroundJobsContract } from './background.contract.js';
import { lxdSkipReason, makeLxdTarget } from './lxd-target.js';

if (lxdSkipReason) {
  describe.skip(`background jobs in an LXD instance: skipped, ${lxdSkipReason}`, () => {
    it('runs only as root with lxd and busybox-static', () => {});
  });
} else {
  backgroundJobsContract('LXD', () => makeLxdTarget());
  // /run/alacarte written through LXD's file API, as on a cluster.
  backgroundJobsContract('LXD, files pushed', () => makeLxdTarget({ delivery: 'push' }));
}
