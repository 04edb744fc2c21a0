import { describe, it } from 'vitest';
import { computeDriverContract } from './compute-driver.contract.js';
import { crunSkipReason, findOnPath, makeCrunTarget } from './crun-target.js';

// The same driver on runc, the fallback runtime: it must honour the whole contract too.
const runc = findOnPath('runc');
const skipReason =
  crunSkipReason ?? (runc ? undefined : 'runc is not installed (scripts/setup.sh installs it)');

if (skipReason || !runc) {
  describe.skip(`crun driver on runc: skipped, ${skipReason}`, () => {
    it('runs only as root with runc and busybox-static', () => {});
  });
} else {
  computeDriverContract('crun driver on runc', () => makeCrunTarget({ runtimePath: runc }), {
    'exec returns when the command exits, even if it left a process holding its output':
      'runc exec copies output through pipes of its own and waits until every process holding them exits',
  });
}
