import { describe, it } from 'vitest';
import { backgroundJobsContract } from './background.contract.js';
import { crunSkipReason, makeCrunTarget } from './crun-target.js';

if (crunSkipReason) {
  describe.skip(`background jobs in a crun sandbox: skipped, ${crunSkipReason}`, () => {
    it('runs only as root with crun and busybox-static', () => {});
  });
} else {
  backgroundJobsContract('crun', () => makeCrunTarget());
}
