import { describe, it } from 'vitest';
import { computeDriverContract } from './compute-driver.contract.js';
import { lxdSkipReason, makeLxdTarget } from './lxd-target.js';

if (lxdSkipReason) {
  describe.skip(`LXD driver: skipped, ${lxdSkipReason}`, () => {
    it('runs only as root with lxd and busybox-static', () => {});
  });
} else {
  computeDriverContract('lxd', makeLxdTarget);
  // /run/alacarte written through LXD's file API, as on a cluster (lxd-cluster.test.ts).
  computeDriverContract('lxd, files pushed', () => makeLxdTarget({ delivery: 'push' }), {
    'shows the lease id and deadline in /run/alacarte/lease.json, read-only':
      "pushed files are the instance's own: its root can write them (delivery bind keeps them read-only)",
  });
}
