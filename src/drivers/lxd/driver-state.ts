import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { SANDBOX_ID_PATTERN } from '../../core/lease-request.js';
import type { SandboxRef } from '../compute-driver.js';
import { type DriverLogger, silentLogger } from '../crun/crun-options.js';
import type { ConnectionBudget } from '../crun/port-proxy.js';
import { type Instance, instanceSchema, KEY, notRunning } from './instance-record.js';
import { LxdError } from './lxd-client.js';
import type { LxdDriverOptions } from './lxd-options.js';
import type { RootSizeKind } from './root-disk.js';
import { installSharedFiles } from './run-dir.js';

/**
 * What one LxdDriver knows, shared by the modules that start, list, stop and reach into its
 * instances (lease-start.ts, sandbox-adoption.ts, sandbox-removal.ts, lease-io.ts, port-relays.ts,
 * deadline-move.ts, exit-watch.ts, lxd-capacity.ts): its settings, what it remembers of each
 * lease, and the lookups from a lease to its instance name, host directory and instance as LXD
 * shows it. Holds no behaviour of its own beyond those lookups.
 */
export class DriverState {
  readonly owner: string;
  readonly pool: string;
  readonly logger: DriverLogger;
  /** The shared copies of /run/alacarte/bin (run-dir.ts, installSharedFiles). */
  readonly libDir: string;
  /** How sftp() runs OpenSSH's sftp-server inside, or undefined when the node has none. */
  readonly sftpCommand: string[] | undefined;
  readonly starting = new Set<string>();
  readonly budgets = new Map<string, ConnectionBudget>();
  /**
   * Leases whose instance is being stopped: an exec that ends now ended with it (lease-io.ts
   * answers `lease_not_running`, not the status its killed command left).
   */
  readonly ending = new Set<string>();
  /** Leases whose instance's end watch() reports: started by this process or found by list(). */
  readonly known = new Set<string>();
  /** See LxdDriverOptions.delivery; settled by create(). */
  delivery: 'bind' | 'push' = 'bind';
  /** How the pool treats a root disk size; settled by create(). */
  rootSize: RootSizeKind = 'whole';
  /** Image trees' footprints on the pool (see rootDiskSize), by path, inode and change time. */
  readonly footprints = new Map<string, number>();

  constructor(readonly options: LxdDriverOptions) {
    this.owner = options.owner ?? 'alacarte';
    this.pool = options.storagePool ?? 'default';
    this.logger = options.logger ?? silentLogger;
    this.libDir = join(options.runtimeDir, '.lib');
    const sftp = installSharedFiles(this.libDir, options.busybox ?? '/bin/busybox');
    this.sftpCommand = 'command' in sftp ? sftp.command : undefined;
    if ('missing' in sftp) this.logger.warn(`alacarte: no SFTP in LXD sandboxes: ${sftp.missing}`);
  }

  /** The instance name for a lease: LXD names are host names, lease ids are not. */
  instanceName(leaseId: string): string {
    return `alc-${createHash('sha256').update(`${this.owner}\0${leaseId}`).digest('hex').slice(0, 24)}`;
  }

  /** The lease's host directory (its /run/alacarte with delivery `bind`). */
  leaseDir(leaseId: string): string {
    return join(this.options.runtimeDir, leaseId);
  }

  /** The instance of a name when it is this node's, or undefined. */
  async instance(name: string): Promise<Instance | undefined> {
    try {
      const i = await this.options.client.get(`/1.0/instances/${name}`, instanceSchema);
      return i.config[KEY.owner] === this.owner ? i : undefined;
    } catch (e) {
      if (e instanceof LxdError && e.status === 404) return undefined;
      throw e;
    }
  }

  /** This node's instances, read from LXD. */
  async instances(): Promise<Instance[]> {
    const all = await this.options.client.get(
      '/1.0/instances?recursion=1',
      z.array(instanceSchema).max(100_000),
    );
    return all.filter((i) => i.config[KEY.owner] === this.owner);
  }

  /** The lease's instance when it runs; `lease_not_running` otherwise. */
  async running(leaseId: string): Promise<Instance> {
    if (!SANDBOX_ID_PATTERN.test(leaseId)) throw notRunning(leaseId);
    const i = await this.instance(this.instanceName(leaseId));
    if (i?.status !== 'Running') throw notRunning(leaseId);
    return i;
  }

  /** The driver's isRunning() (compute-driver.ts): false for a bad id or an unreachable LXD too. */
  async isRunning(sandbox: SandboxRef): Promise<boolean> {
    if (!SANDBOX_ID_PATTERN.test(sandbox.leaseId)) return false;
    const i = await this.instance(this.instanceName(sandbox.leaseId)).catch(() => undefined);
    return i?.status === 'Running';
  }
}
