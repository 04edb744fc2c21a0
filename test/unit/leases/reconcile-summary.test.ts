import { describe, expect, it } from 'vitest';
import { reconcileSummary } from '../../../src/leases/reconciler.js';

describe('reconcileSummary', () => {
  it('says in words what a start-up reconcile did, naming only what happened', () => {
    expect(reconcileSummary({ stoppedSandboxes: 0, failed: 0, resumed: 0, vanished: 1, deadlines: 0 })).toBe(
      '1 running lease(s) whose sandbox was gone (the host restarted, or it was removed) were ended and their unused time refunded',
    );
    expect(reconcileSummary({ stoppedSandboxes: 2, failed: 1, resumed: 3, vanished: 0, deadlines: 4 })).toBe(
      "3 lease(s) whose start had finished are running; 1 paid start(s) that never finished were failed and refunded; 4 sandbox deadline(s) were set again to the store's; 2 sandbox(es) nobody pays for were removed",
    );
  });
});
