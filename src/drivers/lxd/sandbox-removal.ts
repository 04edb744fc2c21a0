import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SANDBOX_ID_PATTERN } from '../../core/lease-request.js';
import type { SandboxRef } from '../compute-driver.js';
import type { DriverState } from './driver-state.js';
import { LxdError } from './lxd-client.js';
import type { PortRelays } from './port-relays.js';

/** Rounds of stop-or-delete in remove() (about 200 ms apart) before it gives up. */
const REMOVE_ATTEMPTS = 50;

/**
 * Ending a lease's instance: stopped (ephemeral, so LXD deletes it) or deleted, its port relays and
 * connection budget dropped, then its host directory removed once the instance is gone.
 */
export class SandboxRemoval {
  constructor(
    private readonly s: DriverState,
    private readonly relays: PortRelays,
  ) {}

  /** The driver's stop() (compute-driver.ts). */
  async stop(sandbox: SandboxRef): Promise<void> {
    if (!SANDBOX_ID_PATTERN.test(sandbox.leaseId)) return;
    await this.remove(sandbox.leaseId);
  }

  /** Stops and deletes the instance (ephemeral: stopping deletes it), then its host directory. */
  async remove(leaseId: string): Promise<void> {
    const name = this.s.instanceName(leaseId);
    this.s.ending.add(leaseId);
    try {
      await this.removeInstance(leaseId, name);
    } finally {
      this.s.ending.delete(leaseId);
    }
  }

  private async removeInstance(leaseId: string, name: string): Promise<void> {
    const client = this.s.options.client;
    // Bounded: LXD deletes an ephemeral instance itself right after it stops, so a DELETE of ours
    // may meet that one; the host directory goes only once the instance is gone.
    let gone = false;
    for (let attempt = 0; attempt < REMOVE_ATTEMPTS && !gone; attempt++) {
      const i = await this.s.instance(name);
      gone = i === undefined;
      if (!i) break;
      if (attempt > 0) await sleep(200);
      try {
        if (i.status === 'Running' || i.status === 'Frozen')
          await client.run('PUT', `/1.0/instances/${name}/state`, {
            action: 'stop',
            force: true,
            timeout: 30,
          });
        else await client.run('DELETE', `/1.0/instances/${name}`, undefined);
      } catch (e) {
        // Gone meanwhile (a concurrent stop, or LXD deleting the ephemeral instance): check again.
        if (!(e instanceof LxdError)) throw e;
      }
    }
    this.relays.unpublish(leaseId);
    this.s.budgets.delete(leaseId);
    // Still there (LXD busy): its directory stays for a later list() to clean up with it.
    if (gone || !(await this.s.instance(name)))
      rmSync(this.s.leaseDir(leaseId), { recursive: true, force: true });
    else this.s.logger.warn(`alacarte: LXD instance of ${leaseId} not removed yet; list() retries`);
  }
}
