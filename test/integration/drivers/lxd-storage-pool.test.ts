import { afterAll, describe, expect, it } from 'vitest';
import type { DriverLogger } from '../../../src/drivers/crun/crun-options.js';
import { newLeaseId, sh, TEST_LIMITS } from './compute-driver.contract.js';
import { type LxdTarget, lxdQuotaPoolSkipReason, lxdSkipReason, makeLxdTarget } from './lxd-target.js';

/** A logger that keeps what the driver warns about. */
function recordingLogger(): DriverLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info: () => {}, warn: (m) => void warnings.push(m) };
}

/**
 * What an operator is told about the storage pool: on `dir` (sizes recorded, not enforced) a
 * warning at start, and a lease can indeed write past its disk; on btrfs no warning.
 */
describe.skipIf(lxdSkipReason)(
  `LXD storage pool${lxdSkipReason ? ` (skipped: ${lxdSkipReason})` : ''}`,
  () => {
    const targets: LxdTarget[] = [];
    afterAll(async () => {
      for (const t of targets) await t.dispose();
    });

    it('warns at start that a dir pool does not enforce disk sizes, which it does not', async () => {
      const logger = recordingLogger();
      const t = await makeLxdTarget({ logger }, 'dir');
      targets.push(t);
      expect(logger.warnings.join('\n')).toMatch(
        /storage pool "default" is dir, which does not enforce disk sizes.*btrfs, zfs or lvm/,
      );
      const a = await t.driver.start(
        { leaseId: newLeaseId(), image: 'busybox' },
        { ...TEST_LIMITS, diskMib: 8 },
        new Date(Date.now() + 120_000),
      );
      const r = await sh(t.driver, a, 'dd if=/dev/zero of=/root/big bs=1M count=12 2>&1; du -m /root/big');
      expect(Number(r.out.trim().split('\n').at(-1)?.split(/\s/)[0])).toBeGreaterThan(8);
    });

    it.skipIf(lxdQuotaPoolSkipReason)(
      `says nothing of disk sizes on a btrfs pool${lxdQuotaPoolSkipReason ? ` (skipped: ${lxdQuotaPoolSkipReason})` : ''}`,
      async () => {
        const logger = recordingLogger();
        const t = await makeLxdTarget({ logger }, 'btrfs');
        targets.push(t);
        expect(logger.warnings.join('\n')).not.toMatch(/disk sizes/);
      },
    );
  },
);
