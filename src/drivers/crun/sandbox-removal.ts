import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SANDBOX_ID_PATTERN, type SandboxRef } from '../compute-driver.js';
import { procsFile } from './cgroup-limits.js';
import type { DriverState } from './driver-state.js';
import { livePids } from './init-process.js';
import { deleteThenDestroyDir } from './layer-pool.js';
import type { LeaseIo } from './lease-io.js';

/**
 * Ending leases' sandboxes: halt() kills a sandbox's processes at once (kill(2), no spawn), so that
 * a stop can be answered; stop() removes the rest (port relays, output drain and exec agent,
 * egress, container, writable layer, directories), one removal shared by concurrent stops.
 */
export class SandboxRemoval {
  constructor(
    private readonly s: DriverState,
    private readonly io: LeaseIo,
  ) {}

  /** The driver's stop() (compute-driver.ts). */
  async stop(sandbox: SandboxRef): Promise<void> {
    const id = sandbox.leaseId;
    if (!SANDBOX_ID_PATTERN.test(id)) return;
    // Concurrent stops of one sandbox (the lease service, the reaper) share one removal.
    const pending = this.s.stopping.get(id);
    if (pending) return pending;
    const removal = this.remove(id).finally(() => this.s.stopping.delete(id));
    this.s.stopping.set(id, removal);
    return removal;
  }

  /** The driver's halt() (compute-driver.ts). */
  async halt(sandbox: SandboxRef): Promise<void> {
    const id = sandbox.leaseId;
    if (!SANDBOX_ID_PATTERN.test(id)) return;
    const name = this.s.containerName(id);
    if (name === undefined) return;
    const live = this.s.live.get(id);
    this.s.live.delete(id);
    this.s.ending.add(id);
    this.io.release(id);
    // Its resources are free for the next lease from now on (capacity()).
    this.s.limitsById.delete(id);
    if (live) await Promise.all(live.proxies.map((p) => p.close()));
    // init is the sandbox's pid namespace's first process: once it dies the kernel kills every
    // other process of the namespace, and no new one can enter it. Everything in its cgroup is
    // killed too, for what joined the cgroup but not the namespace. No process spawn: a few
    // /proc and cgroup reads, then kill(2).
    const procs = procsFile(this.s.cgroups.mode, this.s.cgroupOf(name));
    const killed = new Set<number>();
    /** Kills what runs in the sandbox (each pid once while init lives); false when nothing does. */
    const killAll = (): boolean => {
      const pids = livePids(procs);
      const init = this.s.initPid(id);
      if (init !== undefined) pids.push(init);
      for (const pid of pids) {
        if (init !== undefined && killed.has(pid)) continue;
        killed.add(pid);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      return pids.length > 0;
    };
    if (!killAll()) return;
    // Until init has gone only init is looked at (one /proc read): its end ends the namespace.
    // Each look at the whole cgroup read a file per process and signalled them all again, and
    // looks back to back (setImmediate) took the node's thread from the processes it waited for
    // on a busy host: ~0.9 ms of the thread per stop (bench/PROFILES.md, session 13).
    for (let i = 0; i < 400; i++) {
      await new Promise((r) => (i === 0 ? setImmediate(r) : setTimeout(r, i < 20 ? 1 : 5)));
      if (this.s.initPid(id) !== undefined) continue;
      if (!killAll()) return;
    }
    throw new Error(`the processes of sandbox ${id} did not end`);
  }

  private async remove(id: string): Promise<void> {
    const live = this.s.live.get(id);
    this.s.live.delete(id);
    this.s.ending.add(id);
    this.io.release(id);
    if (live) await Promise.all(live.proxies.map((p) => p.close()));
    const name = this.s.containerName(id);
    if (name) {
      await this.s.egress
        .detach(join(this.s.paths.runtimeDir, name), name)
        .catch((e: unknown) =>
          this.s.log.warn(`alacarte: removing the egress of ${id} failed: ${String(e)}`),
        );
      await deleteThenDestroyDir(join(this.s.paths.runtimeDir, name), this.s.paths.busybox, {
        path: this.s.runtime.path,
        stateDir: this.s.paths.stateDir,
        containerId: this.s.rt.containerId(name),
        remove: () => this.s.rt.removeContainer(name),
      });
    }
    rmSync(join(this.s.paths.runtimeDir, id), { force: true });
    this.s.limitsById.delete(id);
    this.s.inits.forget(id);
    this.s.names.delete(id);
    this.s.metas.delete(id);
    this.s.ending.delete(id);
  }
}
