import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Offer } from '../../../src/core/offers.js';
import type { SandboxHandle } from '../../../src/drivers/compute-driver.js';
import { LxdClient } from '../../../src/drivers/lxd/lxd-client.js';
import { LxdDriver } from '../../../src/drivers/lxd/lxd-driver.js';
import { offersThatFit } from '../../../src/leases/capacity.js';
import { freePort } from '../../helpers/lease-node.js';
import { newLeaseId, sh, TEST_LIMITS } from './compute-driver.contract.js';
import { type LxdCluster, lxdSkipReason, startLxdCluster } from './lxd-target.js';

/**
 * The LXD driver on a real 3-member LXD cluster: three `lxd` daemons on this machine, each with its
 * own state directory and loopback address, joined with tokens as an operator joins machines
 * (src/drivers/lxd/README.md). alacarte talks to the first member over TLS; LXD's scheduler places
 * the instances (no `target`), and /run/alacarte reaches them through LXD's file API, as no host
 * path of the node exists on the other members.
 */
const prerequisite =
  lxdSkipReason ??
  (spawnSync('openssl', ['version']).status === 0 ? undefined : 'no openssl to make a client certificate');
const started: LxdCluster | Error | undefined = prerequisite
  ? undefined
  : await startLxdCluster(3, await freePort()).catch((e: Error) => e);
const skipReason =
  prerequisite ??
  (started instanceof Error ? `a 3-member LXD cluster cannot run here: ${started.message}` : undefined);

const memberSchema = z.array(z.object({ name: z.string(), location: z.string() }).loose());
const resourcesSchema = z
  .object({ cpu: z.object({ total: z.number() }).loose(), memory: z.object({ total: z.number() }).loose() })
  .loose();

if (skipReason || !(started && !(started instanceof Error))) {
  describe.skip(`LXD cluster: skipped, ${skipReason}`, () => {
    it('runs only as root with lxd and openssl, with several LXD daemons on one machine', () => {});
  });
} else {
  const cluster = started;
  describe('the LXD driver on a 3-member LXD cluster (TLS, placement by LXD)', () => {
    let driver: LxdDriver | undefined;
    const handles: SandboxHandle[] = [];
    afterAll(async () => {
      for (const h of handles) await driver?.stop(h).catch(() => {});
      await driver?.close();
      await cluster.stop();
    });

    const makeDriver = async () => {
      driver ??= await LxdDriver.create({
        client: new LxdClient(cluster.endpoint),
        imagesDir: join(cluster.base, 'images'),
        runtimeDir: join(cluster.base, 'sandboxes'),
      });
      return driver;
    };
    const locations = () =>
      new Map(
        memberSchema
          .parse(JSON.parse(cluster.lxc(['list', '--format', 'json'])))
          .map((i) => [i.name, i.location]),
      );

    it('is a cluster of three online members', () => {
      const members = z
        .array(z.object({ server_name: z.string(), status: z.string() }).loose())
        .parse(JSON.parse(cluster.lxc(['query', '/1.0/cluster/members?recursion=1'])));
      expect(members.map((m) => [m.server_name, m.status]).sort()).toEqual([
        ['m1', 'Online'],
        ['m2', 'Online'],
        ['m3', 'Online'],
      ]);
    });

    it('starts leases that LXD spreads over its members, execs in each over TLS, and stops them', async () => {
      const d = await makeDriver();
      for (let i = 0; i < 3; i++) {
        const leaseId = newLeaseId();
        handles.push(
          await d.start({ leaseId, image: 'busybox' }, TEST_LIMITS, new Date(Date.now() + 300_000)),
        );
      }
      const where = locations();
      const placed = handles.map((h) => where.get(d.instanceName(h.leaseId)));
      // LXD's scheduler puts each new instance on the member with the fewest.
      expect(new Set(placed).size).toBe(3);
      for (const h of handles) {
        // No disk device of a host path: /run/alacarte came through the file API.
        const devices = z
          .object({ devices: z.record(z.string(), z.unknown()) })
          .loose()
          .parse(JSON.parse(cluster.lxc(['query', `/1.0/instances/${d.instanceName(h.leaseId)}`])));
        expect(Object.keys(devices.devices)).toEqual(['root']);
        const r = await sh(d, h, 'echo "$(id -u) $(cat /run/alacarte/lease.json)"');
        expect(r.code).toBe(0);
        expect(JSON.parse(r.out.slice(2))).toEqual({ id: h.leaseId, expires_at: h.deadline.toISOString() });
      }
      // A deadline moved on an instance of another member: rewritten inside, seen by the tenant.
      const remote = handles.find((h) => where.get(d.instanceName(h.leaseId)) !== 'm1') as SandboxHandle;
      const later = new Date(Date.now() + 600_000);
      await d.setDeadline(remote, later);
      expect(JSON.parse((await sh(d, remote, 'cat /run/alacarte/lease.json')).out).expires_at).toBe(
        later.toISOString(),
      );
      expect((await d.list()).map((s) => s.leaseId).sort()).toEqual(handles.map((h) => h.leaseId).sort());
      for (const h of handles.splice(0)) await d.stop(h);
      expect(await d.list()).toEqual([]);
      expect([...locations().keys()].filter((n) => n.startsWith('alc-'))).toEqual([]);
    });

    it("reports the cluster's free capacity: every member counted, and offers' available follows", async () => {
      const d = await makeDriver();
      let cpus = 0;
      let memoryMib = 0;
      for (const m of cluster.members) {
        const r = resourcesSchema.parse(
          JSON.parse(cluster.lxc(['query', `/1.0/resources?target=${m.name}`])),
        );
        cpus += r.cpu.total;
        memoryMib += Math.floor(r.memory.total / 2 ** 20);
      }
      const before = await d.capacity();
      // The default overcommit (4 vCPUs per core) over all three members' cores.
      expect(before.vcpu).toBe(cpus * 4);
      expect(before.memoryMib).toBe(memoryMib - Math.min(1024, Math.floor(memoryMib / 8)));
      expect(before.egress).toBe(false);
      // An offer of which exactly two fit in the cluster's free memory.
      const offer: Offer = {
        id: 'half',
        vcpu: 0.5,
        memoryMib: Math.floor(before.memoryMib / 2),
        pids: 64,
        diskMib: 16,
        network: 'none',
        bandwidthMbit: 0,
        amountPerHour: 1n,
        unit: 'sat',
        minSeconds: 60,
        maxSeconds: 3600,
      };
      expect(offersThatFit(before, [offer]).get('half')).toBe(2);
      const h = await d.start(
        { leaseId: newLeaseId(), image: 'busybox' },
        TEST_LIMITS,
        new Date(Date.now() + 300_000),
      );
      handles.push(h);
      const during = await d.capacity();
      expect(during.memoryMib).toBe(before.memoryMib - TEST_LIMITS.memoryMib);
      expect(during.vcpu).toBe(before.vcpu - TEST_LIMITS.vcpu);
      expect(offersThatFit(during, [offer]).get('half')).toBe(1);
      await d.stop(h);
      expect((await d.capacity()).memoryMib).toBe(before.memoryMib);
    });
  });
}
