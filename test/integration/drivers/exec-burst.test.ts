import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxHandle } from '../../../src/drivers/compute-driver.js';
import { newLeaseId, TEST_LIMITS } from './compute-driver.contract.js';
import { type CrunTarget, crunSkipReason, makeCrunTarget } from './crun-target.js';

// Execs run by the node's spawner shell with their output on FIFOs (exec.ts): a burst of them, more
// than the FIFOs made ahead and than the shell runs at once, each gets its own output, input and
// exit status.
describe.skipIf(crunSkipReason)('a burst of execs in crun sandboxes', () => {
  let t: CrunTarget;
  const handles: SandboxHandle[] = [];

  beforeAll(async () => {
    t = await makeCrunTarget();
    for (let i = 0; i < 2; i++) {
      handles.push(
        await t.driver.start(
          { leaseId: newLeaseId(), image: 'busybox' },
          { ...TEST_LIMITS, pids: 256 },
          new Date(Date.now() + 300_000),
        ),
      );
    }
  });
  afterAll(async () => {
    await t?.dispose();
  });

  it('100 at once: each answers its own stdout, stderr, stdin and exit status', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        t.driver.exec(handles[i % 2] as SandboxHandle, {
          command: ['sh', '-c', `read line; echo "out ${i} $line"; echo "err ${i}" >&2; exit ${i % 7}`],
          stdin: `in ${i}\n`,
          timeoutMs: 120_000,
          maxOutputBytes: 1024,
        }),
      ),
    );
    results.forEach((r, i) => {
      expect(r.stdout.toString()).toBe(`out ${i} in ${i}\n`);
      expect(r.stderr.toString()).toBe(`err ${i}\n`);
      expect(r.exitCode).toBe(i % 7);
      expect(r.timedOut).toBe(false);
    });
  });
});
