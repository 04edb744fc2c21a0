import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { ComputeDriver } from '../drivers/compute-driver.js';

/**
 * Where a lease's sandbox is, as the store records it (columns `target` and `replica`, migration
 * 0012). Replicas sharing a store each reconcile only their own target's leases:
 * - `crun:<replica id>`: sandboxes on this replica's machine, in its own sandboxes directory; no
 *   other replica can reach them (exec, attach, files and ports answer 421 `lease_elsewhere` there;
 *   stop and extend are store operations, and the holder carries out the kill or the new deadline
 *   when told, src/store/replica-notices.ts).
 * - a driver's `sharedTarget` (LXD: `lxd:<owner>`): a daemon or cluster every replica reaches, so
 *   any replica serves any of its leases.
 */
export interface ComputeTarget {
  /** The value of `leases.target` for sandboxes this replica starts. */
  readonly id: string;
  /** This replica's id (`leases.replica` of the leases it starts). */
  readonly replica: string;
  /** Whether every replica reaches this target's sandboxes. */
  readonly shared: boolean;
}

/** A replica id, e.g. `rep_0f3a…` (16 hex digits). */
const REPLICA_ID = /^rep_[0-9a-f]{16}$/;

/**
 * This replica's id, kept in `<dataDir>/replica.id` (made on first start). It names this data
 * directory's sandboxes in the store: it is per replica, never copied to another one (the node key
 * and the mint seed are; README "Scaling out").
 */
export function loadOrCreateReplicaId(path: string): string {
  if (existsSync(path)) {
    const id = readFileSync(path, 'utf8').trim();
    if (!REPLICA_ID.test(id)) throw new Error(`${path} does not hold a replica id (rep_ and 16 hex digits)`);
    return id;
  }
  const id = `rep_${randomBytes(8).toString('hex')}`;
  writeFileSync(path, `${id}\n`, { mode: 0o600, flag: 'wx' });
  return id;
}

/** The target of this replica's driver: the driver's shared one, or its own machine's. */
export function computeTarget(
  driver: Pick<ComputeDriver, 'id' | 'sharedTarget'>,
  replica: string,
): ComputeTarget {
  const shared = driver.sharedTarget;
  return shared
    ? { id: shared, replica, shared: true }
    : { id: `${driver.id}:${replica}`, replica, shared: false };
}

/**
 * A single node's target (tests, one process): its sandboxes are its own, and leases recorded
 * before targets were (target '') are its own too.
 */
export function localTarget(driver: Pick<ComputeDriver, 'id' | 'sharedTarget'>): ComputeTarget {
  return computeTarget(driver, 'rep_0000000000000000');
}

/** Whether a lease's sandbox is on `target` (leases recorded before targets were count as its own). */
export function holds(target: ComputeTarget, row: { target: string }): boolean {
  return row.target === target.id || row.target === '';
}
