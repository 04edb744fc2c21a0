import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SANDBOX_ID_PATTERN } from '../../core/lease-request.js';
import type { SandboxInfo } from '../compute-driver.js';
import type { DriverState } from './driver-state.js';
import { KEY, parsePorts } from './instance-record.js';
import type { PortRelays } from './port-relays.js';
import type { SandboxRemoval } from './sandbox-removal.js';

/** A stopped instance younger than this may be one being started (by this node or another replica). */
const STARTING_GRACE_MS = 120_000;

/**
 * list(): this node's instances as LXD shows them, whichever replica or earlier process started
 * them. Running ones are watched and their ports served here; stopped ones (not being started) are
 * removed, and host directories whose instance is gone are swept.
 */
export class SandboxAdoption {
  constructor(
    private readonly s: DriverState,
    private readonly relays: PortRelays,
    private readonly removal: SandboxRemoval,
  ) {}

  /** The driver's list() (compute-driver.ts). */
  async list(): Promise<SandboxInfo[]> {
    const out: SandboxInfo[] = [];
    const seen = new Set<string>();
    for (const i of await this.s.instances()) {
      const leaseId = i.config[KEY.lease] ?? '';
      if (!SANDBOX_ID_PATTERN.test(leaseId)) continue;
      seen.add(leaseId);
      if (i.status === 'Running') {
        this.s.known.add(leaseId);
        const ports = parsePorts(i.config[KEY.ports]);
        // A restarted node serves the ports again, on the host ports its answers already gave, and
        // another replica's leases are served here too (servePorts()).
        if (!this.s.starting.has(leaseId)) await this.relays.servePorts(leaseId, ports);
        out.push({ leaseId, deadline: new Date(i.config[KEY.deadline] ?? 0), ports });
      } else if (!this.s.starting.has(leaseId) && !recent(i.created_at)) {
        await this.removal.remove(leaseId);
      }
    }
    // Host directories of instances that are gone (ended at their deadline while no node ran).
    for (const entry of safeReaddir(this.s.options.runtimeDir)) {
      if (SANDBOX_ID_PATTERN.test(entry) && !seen.has(entry) && !this.s.starting.has(entry)) {
        // A directory being made by a start elsewhere is young; one removed meanwhile counts as young.
        const age = Date.now() - mtimeMs(join(this.s.options.runtimeDir, entry));
        if (age > STARTING_GRACE_MS)
          rmSync(join(this.s.options.runtimeDir, entry), { recursive: true, force: true });
      }
    }
    return out;
  }
}

function recent(createdAt: string | undefined): boolean {
  const t = createdAt ? Date.parse(createdAt) : Number.NaN;
  return Number.isFinite(t) && Date.now() - t < STARTING_GRACE_MS;
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Date.now();
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
