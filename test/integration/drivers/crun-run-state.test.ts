import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ContainerRuntime } from '../../../src/drivers/crun/container-runtime.js';
import { CrunDriver } from '../../../src/drivers/crun/crun-driver.js';
import { LEASE_LINK } from '../../../src/drivers/crun/host-fs.js';
import { LayerPool } from '../../../src/drivers/crun/layer-pool.js';
import { mountsUnder } from '../../../src/drivers/crun/mounts.js';
import { TMPFS_MAGIC } from '../../../src/drivers/crun/run-state.js';
import { newLeaseId, sh, TEST_LIMITS, waitFor } from './compute-driver.contract.js';
import { crunSkipReason, makeCrunTarget } from './crun-target.js';

/**
 * The sandboxes' run directories (lease files, FIFOs, each exec's script and output FIFOs) on a
 * tmpfs beside the runtime's state (run-state.ts): it must outlive the node as the sandboxes do, be
 * found again by the next node, and go with the last sandbox.
 */
describe.skipIf(crunSkipReason)('crun run state on a tmpfs of its own', () => {
  it('outlives the node with its sandbox: the next node execs through the agent, moves the deadline, removes it all', async () => {
    // The first node has no native exec agent (as one built before it existed): its sandbox runs
    // the shell agent, which the next node, which has it, still drives.
    const first = await makeCrunTarget({ nativeAgent: false });
    const runState = `${first.options.stateDir}-run`;
    const leaseId = newLeaseId();
    let second: CrunDriver | undefined;
    try {
      const h = await first.driver.start(
        { leaseId, image: 'busybox' },
        TEST_LIMITS,
        new Date(Date.now() + 120_000),
      );
      const container = readlinkSync(join(first.options.runtimeDir, leaseId));
      expect(statfsSync(runState).type).toBe(TMPFS_MAGIC);
      // A mount of the driver's own where /run is no tmpfs (this host's is ext4), never under its
      // runtime directory.
      const ownMount = statfsSync('/run').type !== TMPFS_MAGIC;
      if (ownMount) expect(mountsUnder(runState)).toEqual([runState]);
      // Under the runtime directory: the sandboxes' own layer mounts only (this one's, and the pool's).
      expect(
        mountsUnder(first.options.runtimeDir).filter((p) => !/\/w[0-9a-f]{12}\/(rootfs|layer)$/.test(p)),
      ).toEqual([]);
      const link = join(first.options.runtimeDir, container, 'run');
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe(join(runState, container, 'run'));
      // The host's meta.json beside it, out of the sandbox's sight.
      expect(readlinkSync(join(first.options.runtimeDir, container, 'meta.json'))).toBe(
        join(runState, container, 'meta.json'),
      );
      expect(JSON.parse(readFileSync(join(runState, container, 'meta.json'), 'utf8')).leaseId).toBe(leaseId);
      expect((await sh(first.driver, h, 'ls /run/alacarte')).out).not.toContain('meta.json');
      // Whose child an exec is: the agent's, or (`crun exec`) nothing in the sandbox's pid namespace.
      const parentOf = async (d: CrunDriver, of: { leaseId: string }) =>
        (await sh(d, of, 'cat /proc/$PPID/cmdline | tr "\\0" " "')).out;
      expect(await parentOf(first.driver, h)).toContain('/run/alacarte/bin/agent.sh');
      expect((await sh(first.driver, h, 'cat /run/alacarte/lease.json')).out).toContain(leaseId);

      // The node goes away; the sandbox and its run state stay.
      await first.driver.close();
      if (ownMount) expect(mountsUnder(runState)).toEqual([runState]);
      expect(readdirSync(runState)).toContain(container);
      // A crash between a removal's two steps leaves a run directory without its sandbox: swept.
      const orphan = join(runState, 'w0123456789ab');
      mkdirSync(orphan);

      second = await CrunDriver.create({ ...first.options, nativeAgent: undefined });
      expect((await second.list()).map((s) => s.leaseId)).toEqual([leaseId]);
      expect(existsSync(orphan)).toBe(false);
      expect(await parentOf(second, h)).toContain('/run/alacarte/bin/agent.sh');
      const later = new Date(Date.now() + 600_000);
      await second.setDeadline(h, later);
      expect((await sh(second, h, 'cat /run/alacarte/deadline')).out.trim()).toBe(
        String(Math.ceil(later.getTime() / 1000)),
      );
      expect((await sh(second, h, 'cat /run/alacarte/lease.json')).out).toContain(later.toISOString());
      // meta.json replaced where it is, on the run state, not over its link.
      expect(lstatSync(join(first.options.runtimeDir, container, 'meta.json')).isSymbolicLink()).toBe(true);
      expect(JSON.parse(readFileSync(join(runState, container, 'meta.json'), 'utf8')).deadline).toBe(
        later.toISOString(),
      );

      await second.stop(h);
      expect(readdirSync(runState).filter((e) => e !== '.exec')).toEqual([]);
      await second.close();
      second = undefined;
      // No sandbox left: nothing of it either.
      expect(mountsUnder(runState)).toEqual([]);
      expect(existsSync(runState)).toBe(false);
    } finally {
      await second?.stop({ leaseId }).catch(() => {});
      await second?.close();
      await first.dispose();
    }
  });

  it('links a lease to its sandbox by a second name of the link made ahead with it; a sandbox made without one gets a link of its own', async () => {
    const t = await makeCrunTarget();
    const runtimeDir = t.options.runtimeDir;
    const started: string[] = [];
    const start = async () => {
      const leaseId = newLeaseId();
      started.push(leaseId);
      await t.driver.start({ leaseId, image: 'busybox' }, TEST_LIMITS, new Date(Date.now() + 120_000));
      return { leaseId, link: join(runtimeDir, leaseId), name: readlinkSync(join(runtimeDir, leaseId)) };
    };
    try {
      const a = await start();
      expect(lstatSync(a.link).isSymbolicLink()).toBe(true);
      expect(lstatSync(a.link).nlink).toBe(2);
      expect(lstatSync(join(runtimeDir, a.name, LEASE_LINK)).ino).toBe(lstatSync(a.link).ino);
      expect((await sh(t.driver, a, 'echo via-link')).out).toBe('via-link\n');
      // The refill its take set off, once made, as an older node made them: no link ahead.
      const waiting = () =>
        readdirSync(runtimeDir).filter(
          (n) => LayerPool.isPoolName(n) && n !== a.name && mountsUnder(join(runtimeDir, n)).length === 2,
        );
      expect(await waitFor(async () => waiting().length > 0, 60_000)).toBe(true);
      const before = waiting();
      for (const name of before) rmSync(join(runtimeDir, name, LEASE_LINK));
      const b = await start();
      expect(before).toContain(b.name);
      expect(existsSync(join(runtimeDir, b.name, LEASE_LINK))).toBe(false);
      expect(lstatSync(b.link).isSymbolicLink()).toBe(true);
      expect(lstatSync(b.link).nlink).toBe(1);
      expect((await sh(t.driver, b, 'echo via-own-link')).out).toBe('via-own-link\n');
      // A second start of a lease finds its link taken, whichever way it was made.
      await expect(
        t.driver.start({ leaseId: a.leaseId, image: 'busybox' }, TEST_LIMITS, new Date(Date.now() + 120_000)),
      ).rejects.toThrow(/exists already/);
    } finally {
      for (const leaseId of started) await t.driver.stop({ leaseId }).catch(() => {});
      await t.dispose();
    }
  });
});

/**
 * A sandbox whose init ended at its deadline still holds its writable layer (memory) until the
 * driver removes it: the scan after starts (reapEnded, at most one per half second however many
 * starts end meanwhile) does, with no lease service watching.
 */
describe.skipIf(crunSkipReason)('crun sandboxes that end on their own', () => {
  it('are removed after later starts, started back to back', async () => {
    const t = await makeCrunTarget();
    const runtimeDir = t.options.runtimeDir;
    const started: string[] = [];
    const start = async (ms: number) => {
      const leaseId = newLeaseId();
      started.push(leaseId);
      await t.driver.start({ leaseId, image: 'busybox' }, TEST_LIMITS, new Date(Date.now() + ms));
      return leaseId;
    };
    try {
      const ended = await start(1500);
      const name = readlinkSync(join(runtimeDir, ended));
      expect(await waitFor(async () => t.driver.initPid(ended) === undefined, 15_000)).toBe(true);
      // Nothing has removed it yet: its layer and root are still mounted.
      expect(mountsUnder(join(runtimeDir, name))).toHaveLength(2);
      await Promise.all([start(120_000), start(120_000), start(120_000)]);
      const removed = () =>
        !existsSync(join(runtimeDir, ended)) && mountsUnder(join(runtimeDir, name)).length === 0;
      expect(await waitFor(async () => removed(), 10_000)).toBe(true);
    } finally {
      for (const leaseId of started) await t.driver.stop({ leaseId }).catch(() => {});
      await t.dispose();
    }
  });
});

/**
 * The runtime's `list` fails whole when a container's state file goes between its look and its
 * read (crun: "error opening file .../status: No such file"), which a teardown of hundreds of
 * sandboxes makes true for seconds at a time: the driver's list() (the reconciler's sweep, a node's
 * close) threw. It now asks container by container and skips one that is gone. The race is made
 * certain here by a runtime whose `list` always fails so (every other command is crun's own).
 */
describe.skipIf(crunSkipReason)('crun listing while containers are being removed', () => {
  it('lists the running sandboxes, a half-removed one left out', async () => {
    const t = await makeCrunTarget();
    const leaseId = newLeaseId();
    const stateDir = t.options.stateDir ?? '';
    const instance = t.options.instance ?? '';
    // A container directory of this instance without its state file, as a removal under way leaves it.
    const going = join(stateDir, `${instance}-w00000000abcd`);
    const racing = join(t.base, 'racing-crun');
    writeFileSync(
      racing,
      `#!/bin/sh\nfor a; do [ "$a" = list ] && { echo "error opening file \\\`${going}/status\\\`: No such file or directory" >&2; exit 1; }; done\nexec crun "$@"\n`,
      { mode: 0o755 },
    );
    try {
      await t.driver.start({ leaseId, image: 'busybox' }, TEST_LIMITS, new Date(Date.now() + 120_000));
      mkdirSync(going);
      const name = readlinkSync(join(t.options.runtimeDir, leaseId));
      const runtime = new ContainerRuntime(
        { name: 'crun', path: racing, version: 'test' },
        stateDir,
        instance,
      );
      const listed = await runtime.containers();
      expect(listed.filter((c) => c.name === name)).toEqual([{ name, status: 'running' }]);
      expect(listed.some((c) => c.name === 'w00000000abcd')).toBe(false);
    } finally {
      rmSync(going, { recursive: true, force: true });
      await t.driver.stop({ leaseId }).catch(() => {});
      await t.dispose();
    }
  });
});
