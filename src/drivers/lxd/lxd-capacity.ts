import { z } from 'zod';
import { availableCapacity, defaultOvercommit } from '../capacity.js';
import type { DriverCapacity } from '../compute-driver.js';
import type { DriverState } from './driver-state.js';
import { KEY, limitsOf } from './instance-record.js';

const resourcesSchema = z
  .object({
    cpu: z.object({ total: z.number().int() }).loose(),
    memory: z.object({ total: z.number() }).loose(),
  })
  .loose();
const poolResourcesSchema = z
  .object({ space: z.object({ total: z.number(), used: z.number().optional() }).loose() })
  .loose();
/** GET /1.0/cluster: whether the daemon is a cluster member. */
export const clusterSchema = z.object({ enabled: z.boolean() }).loose();
const membersSchema = z
  .array(z.object({ server_name: z.string().max(63), status: z.string() }).loose())
  .max(1000);

/** Host totals (cluster members' CPU and memory) are read again after this long. */
const RESOURCES_TTL_MS = 30_000;

/**
 * capacity(): the CPU and memory of every online cluster member (or of the one daemon) and the
 * storage pool's size, read from LXD at most every RESOURCES_TTL_MS, less the limits recorded on
 * this node's instances (whichever replica started them).
 */
export class LxdCapacity {
  private totals: { at: number; cpus: number; memoryMib: number; diskMib: number } | undefined;

  constructor(private readonly s: DriverState) {}

  /** The driver's capacity() (compute-driver.ts): what is left of the hosts' totals after every lease's limits. */
  async capacity(): Promise<DriverCapacity> {
    const totals = await this.readTotals();
    // What leases hold: running instances and those being started (a stopped one is on its way out).
    const counted = (await this.s.instances()).filter(
      (i) => i.status !== 'Stopped' || this.s.starting.has(i.config[KEY.lease] ?? ''),
    );
    const running = counted.map((i) => limitsOf(i)).filter((l) => l !== undefined);
    const leases = new Set<string>();
    for (const i of counted) {
      const lease = i.config[KEY.lease];
      if (lease && limitsOf(i)) leases.add(lease);
    }
    const settings = {
      ...defaultOvercommit({ cpus: totals.cpus, memoryMib: totals.memoryMib }),
      diskBudgetMib: totals.diskMib,
      ...this.s.options.overcommit,
    };
    // No NIC: egress offers cannot run on LXD instances (issue 12 allows "no NIC").
    return { ...availableCapacity(totals, settings, running), egress: false, leases };
  }

  /** CPU and memory of every cluster member (or of the one daemon), and the pool's size. */
  private async readTotals() {
    if (this.totals && Date.now() - this.totals.at < RESOURCES_TTL_MS) return this.totals;
    const client = this.s.options.client;
    const cluster = await client.get('/1.0/cluster', clusterSchema).catch(() => ({ enabled: false }));
    const targets = cluster.enabled
      ? (await client.get('/1.0/cluster/members?recursion=1', membersSchema))
          .filter((m) => m.status === 'Online')
          .map((m) => `?target=${encodeURIComponent(m.server_name)}`)
      : [''];
    let cpus = 0;
    let memoryMib = 0;
    for (const target of targets) {
      const r = await client.get(`/1.0/resources${target}`, resourcesSchema);
      cpus += r.cpu.total;
      memoryMib += Math.floor(r.memory.total / 2 ** 20);
    }
    const pool = await client.get(
      `/1.0/storage-pools/${encodeURIComponent(this.s.pool)}/resources`,
      poolResourcesSchema,
    );
    this.totals = { at: Date.now(), cpus, memoryMib, diskMib: Math.floor(pool.space.total / 2 ** 20) };
    return this.totals;
  }
}
