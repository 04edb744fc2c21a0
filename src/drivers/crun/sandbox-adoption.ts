import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SANDBOX_ID_PATTERN, type SandboxInfo, type SandboxRef } from '../compute-driver.js';
import type { DriverState, Live } from './driver-state.js';
import { destroyDir, LayerPool } from './layer-pool.js';
import { ConnectionBudget, PortProxy } from './port-proxy.js';
import { sweepRunState } from './run-state.js';
import { type SandboxMeta, urls } from './sandbox-meta.js';

/**
 * What a driver finds on the host: list() adopts the sandboxes that a previous process left running
 * for their leases (limits, exit watch, port relays, egress) and removes what is left over
 * (containers of nobody, sandboxes half made, ended or past their deadline, run directories and
 * egress networks of nobody); sweepMadeForNobody() removes what this driver's pool made for nobody.
 */
export class SandboxAdoption {
  /**
   * @param stop removes a lease's sandbox (the driver's stop()).
   */
  constructor(
    private readonly s: DriverState,
    private readonly stop: (sandbox: SandboxRef) => Promise<void>,
  ) {}

  async list(): Promise<SandboxInfo[]> {
    // Directory first, runtime second: a lease linked in this snapshot that was not starting then
    // had finished starting before the runtime was asked, so the runtime's status for it is current.
    const entries = readdirSync(this.s.paths.runtimeDir);
    const startingThen = new Set(this.s.starting);
    const containers = await this.s.rt.containers();
    const leaseOf = new Map<string, string>();
    for (const entry of entries) {
      if (!SANDBOX_ID_PATTERN.test(entry) || LayerPool.isPoolName(entry)) continue;
      const name = this.s.containerName(entry);
      if (name) leaseOf.set(name, entry);
    }
    // Waiting in the pool, being made, or given to a lease by this process: never a leftover.
    const ours = (name: string) => this.s.pool.holds(name) || [...this.s.names.values()].includes(name);
    const starting = (id: string) => startingThen.has(id) || this.s.starting.has(id);
    const out: SandboxInfo[] = [];
    const handled = new Set<string>();
    // Egress networks to keep: those of live sandboxes and of starts under way (theirs or a pool's).
    const withEgress = new Set<string>([...this.s.names.values()]);
    for (const c of containers) {
      handled.add(c.name);
      const id = leaseOf.get(c.name);
      if (id === undefined) {
        if (ours(c.name)) continue;
        this.s.log.info(`alacarte: removing leftover container ${c.name} (${c.status})`);
        await this.s.rt.removeContainer(c.name).catch(() => {});
        await destroyDir(join(this.s.paths.runtimeDir, c.name), this.s.paths.busybox).catch(() => {});
        continue;
      }
      handled.add(id);
      if (starting(id) || this.s.stopping.has(id)) continue;
      let meta: SandboxMeta | undefined;
      try {
        meta = this.s.metas.readMeta(id);
      } catch {
        meta = undefined;
      }
      // Belt and braces: init ends the sandbox at its deadline; anything past it by 5 s goes now.
      const overdue = meta !== undefined && Date.parse(meta.deadline) + 5000 < Date.now();
      if (c.status !== 'running' || meta === undefined || overdue || this.s.initPid(id) === undefined) {
        this.s.log.info(
          `alacarte: cleaning up sandbox ${id} (${c.status}${overdue ? ', past its deadline' : ''})`,
        );
        await this.stop({ leaseId: id });
        continue;
      }
      this.s.limitsById.set(id, meta.limits);
      this.s.watched.add(id);
      if (!this.s.live.has(id)) await this.reopenPorts(id, meta);
      if (meta.limits.network === 'egress') {
        withEgress.add(c.name);
        // Failing closed: without its pasta the sandbox has no network, which is no reason to fail list().
        try {
          await this.s.egress.restore(this.s.egressTarget(id, c.name, meta.limits));
        } catch (e) {
          this.s.log.warn(`alacarte: the egress of ${id} could not be restored: ${String(e)}`);
        }
      }
      out.push({ leaseId: id, deadline: new Date(meta.deadline), ports: urls(meta.ports) });
    }
    // Remains without a container: a start or a preparation that crashed half-way.
    for (const entry of entries) {
      if (!SANDBOX_ID_PATTERN.test(entry) || handled.has(entry)) continue;
      if (LayerPool.isPoolName(entry)) {
        if (ours(entry) || leaseOf.has(entry)) continue;
        this.s.log.info(`alacarte: removing the remains of sandbox directory ${entry}`);
        await destroyDir(join(this.s.paths.runtimeDir, entry), this.s.paths.busybox).catch(() => {});
      } else if (!starting(entry) && !this.s.stopping.has(entry)) {
        this.s.log.info(`alacarte: removing the remains of sandbox ${entry}`);
        await this.stop({ leaseId: entry });
      }
    }
    await this.s.egress.sweep(withEgress);
    // Run directories whose sandbox directory is gone (a removal cut short by a crash).
    for (const name of sweepRunState(
      this.s.paths.runState,
      this.s.paths.runtimeDir,
      (n) => !LayerPool.isPoolName(n) || ours(n),
    ))
      this.s.log.info(`alacarte: removed the run directory of sandbox ${name}, whose sandbox is gone`);
    return out;
  }

  /**
   * Removes every container and sandbox directory this driver's pool made and never handed to a
   * take, and that it no longer holds: what was made ahead for nobody and is no
   * longer in the pool's hands, i.e. a making whose helper programs were killed under it (a signal
   * to every process of the service, as systemd sends: the shell that ran them died, the making
   * failed without knowing how far its programs got, and one of them, out of the signal's reach,
   * may have created its container after the pool's own removal). Sandboxes of leases are never
   * touched: they outlive the node. list() does the same (and more) at the next start; close()
   * does it so that a stopped node leaves nothing of the pool whenever it can.
   */
  async sweepMadeForNobody(): Promise<void> {
    const entries = readdirSync(this.s.paths.runtimeDir);
    // Only what this driver's pool began making and never handed to a take (a lease's sandbox is
    // never among them): another driver over the same directories has sandboxes of its own there.
    const mine = this.s.pool.unsettledNames();
    const kept = (name: string) => !mine.has(name) || this.s.pool.holds(name);
    for (const c of await this.s.rt.containers()) {
      if (kept(c.name)) continue;
      this.s.log.info(`alacarte: removing container ${c.name}, made ahead for nobody (${c.status})`);
      await this.s.rt.removeContainer(c.name).catch(() => {});
      await destroyDir(join(this.s.paths.runtimeDir, c.name), this.s.paths.busybox).catch(() => {});
    }
    for (const entry of entries) {
      if (!LayerPool.isPoolName(entry) || kept(entry)) continue;
      await destroyDir(join(this.s.paths.runtimeDir, entry), this.s.paths.busybox).catch(() => {});
    }
    sweepRunState(this.s.paths.runState, this.s.paths.runtimeDir, kept);
  }

  private async reopenPorts(leaseId: string, meta: SandboxMeta): Promise<void> {
    const live: Live = { proxies: [], budget: new ConnectionBudget() };
    this.s.live.set(leaseId, live);
    for (const [inside, hostPort] of Object.entries(meta.ports)) {
      const proxy = new PortProxy(
        Number(inside),
        () => this.s.initPid(leaseId),
        this.s.paths.busybox,
        live.budget,
      );
      live.proxies.push(proxy);
      try {
        await proxy.listen(hostPort);
      } catch (e) {
        this.s.log.warn(
          `alacarte: port ${hostPort} of sandbox ${leaseId} could not be reopened: ${String(e)}`,
        );
      }
    }
  }
}
