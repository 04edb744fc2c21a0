import { describe, expect, it } from 'vitest';
import type { ComputeDriver, SandboxInfo } from '../../../src/drivers/compute-driver.js';
import type { ComputeTarget } from '../../../src/leases/compute-target.js';
import { Reconciler } from '../../../src/leases/reconciler.js';
import { silentLogger } from '../../../src/log.js';
import { openDatabase } from '../../../src/store/database.js';
import { leaseRow } from '../../helpers/lease-rows.js';

/**
 * Reconcile per compute target (compute-target.ts), against a driver that only lists sandboxes and
 * records what is stopped: a replica's start-up touches its own target's leases only; on a shared
 * target (LXD) another replica's lease being started, and a sandbox with no lease row at all, are
 * left alone.
 */
const NOW = 1_800_000_000_000;
const HOUR = 3_600_000;

function driverListing(sandboxes: SandboxInfo[], stopped: string[]): ComputeDriver {
  const unused = () => {
    throw new Error('not used here');
  };
  return {
    id: 'stub',
    capacity: unused,
    start: unused,
    exec: unused,
    spawn: unused,
    sftp: unused,
    connect: unused,
    attach: unused,
    setDeadline: async () => {},
    isRunning: async ({ leaseId }) => sandboxes.some((s) => s.leaseId === leaseId),
    watch: () => () => {},
    stop: async ({ leaseId }) => {
      stopped.push(leaseId);
    },
    list: async () => sandboxes.filter((s) => !stopped.includes(s.leaseId)),
    close: async () => {},
  };
}

const row = (id: string, state: 'pending' | 'running', target: string, replica: string, createdAt = NOW) =>
  leaseRow({
    id,
    state,
    created_at: createdAt,
    started_at: state === 'running' ? NOW - HOUR : null,
    expires_at: state === 'running' ? NOW + HOUR : null,
    ended_at: null,
    held: 60,
    target,
    replica,
  });

async function reconcileAs(target: ComputeTarget, rows: ReturnType<typeof row>[], sandboxes: string[]) {
  const db = await openDatabase(':memory:');
  await db.insertInto('leases').values(rows).execute();
  const stopped: string[] = [];
  const ended: string[] = [];
  const driver = driverListing(
    sandboxes.map((leaseId) => ({ leaseId, deadline: new Date(NOW + HOUR), ports: {} })),
    stopped,
  );
  const reconciler = new Reconciler({
    db,
    driver,
    now: () => new Date(NOW),
    log: silentLogger(),
    end: async (r) => {
      ended.push(r.id);
      return true;
    },
    endIn: async () => true,
    onExpired: () => {},
    target,
  });
  const outcome = await reconciler.reconcile();
  await db.destroy();
  return { outcome, stopped, ended };
}

describe('reconcile per compute target', () => {
  it('crun: leaves the leases of another replica alone, whatever its own driver lists', async () => {
    const me: ComputeTarget = { id: 'crun:rep_a', replica: 'rep_a', shared: false };
    const { outcome, stopped, ended } = await reconcileAs(
      me,
      [
        row('lse_mine_running', 'running', 'crun:rep_a', 'rep_a'),
        row('lse_mine_vanished', 'running', 'crun:rep_a', 'rep_a'),
        row('lse_theirs_running', 'running', 'crun:rep_b', 'rep_b'),
        row('lse_theirs_pending', 'pending', 'crun:rep_b', 'rep_b', NOW - 2 * HOUR),
      ],
      ['lse_mine_running', 'lse_nobodys'],
    );
    // Only its own lease whose sandbox is gone ends; the sandbox nobody paid for is removed.
    expect(ended).toEqual(['lse_mine_vanished']);
    expect(stopped).toEqual(['lse_nobodys']);
    expect(outcome).toMatchObject({ vanished: 1, failed: 0, stoppedSandboxes: 1 });
  });

  it('shared: a pending lease another replica is starting, and its instance, are left alone', async () => {
    const me: ComputeTarget = { id: 'lxd:alacarte', replica: 'rep_b', shared: true };
    const { outcome, stopped, ended } = await reconcileAs(
      me,
      [
        // A's start under way: the instance exists already (LXD lists it), the row is pending.
        row('lse_a_starting', 'pending', 'lxd:alacarte', 'rep_a', NOW - 5_000),
        row('lse_a_starting_noinst', 'pending', 'lxd:alacarte', 'rep_a', NOW - 5_000),
        // A's start that began long ago: A died with it; any replica settles it (refund).
        row('lse_a_stale', 'pending', 'lxd:alacarte', 'rep_a', NOW - HOUR),
        row('lse_a_running', 'running', 'lxd:alacarte', 'rep_a'),
      ],
      ['lse_a_starting', 'lse_a_running', 'lse_no_row'],
    );
    expect(ended).toEqual(['lse_a_stale']);
    // Neither A's starting instance nor one of no lease here (another store's?) is removed.
    expect(stopped).toEqual([]);
    expect(outcome).toMatchObject({ failed: 1, vanished: 0, stoppedSandboxes: 0, resumed: 0 });
  });
});
