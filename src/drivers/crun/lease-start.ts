import { linkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AlacarteError } from '../../core/errors.js';
import { deadlineAllowed } from '../../core/lease-request.js';
import type { SandboxHandle, SandboxLimits, SandboxSpec } from '../compute-driver.js';
import { applyLimits, limitWrites } from './cgroup-limits.js';
import { cpusetFile, keepsCpus } from './cpuset.js';
import { type DriverState, type Live, readLink } from './driver-state.js';
import type { ExitWatch } from './exit-watch.js';
import { exists } from './host-dirs.js';
import { LEASE_LINK } from './host-fs.js';
import { leaseArgv } from './image-config.js';
import { wakeInit } from './init-process.js';
import { commandFile, deadlineFile, INIT_RECHECK_SECONDS, leaseFile, START_FIFO } from './init-script.js';
import { destroyDir } from './layer-pool.js';
import { validateLimits, validateSpec } from './lease-checks.js';
import type { MadeAhead } from './made-ahead.js';
import { ConnectionBudget, PortProxy } from './port-proxy.js';
import { type SandboxMeta, urls, writeAtomic } from './sandbox-meta.js';

/**
 * A lease's start: a sandbox made ahead is taken from the pool (made-ahead.ts), linked to the
 * lease, given the offer's limits and CPUs, its deadline, command, egress and published ports, and
 * its init is woken to run the command; a failure undoes all of it.
 */
export class LeaseStarter {
  constructor(
    private readonly s: DriverState,
    private readonly made: MadeAhead,
    private readonly exits: ExitWatch,
  ) {}
  async start(spec: SandboxSpec, limits: SandboxLimits, deadline: Date): Promise<SandboxHandle> {
    validateSpec(spec);
    validateLimits(limits);
    if (!deadlineAllowed(deadline))
      throw new AlacarteError('invalid_request', 'deadline is not a date up to year 9999');
    const id = spec.leaseId;
    const link = join(this.s.paths.runtimeDir, id);
    if (this.s.starting.has(id) || this.s.stopping.has(id) || exists(link)) {
      throw new AlacarteError('invalid_request', `a sandbox for ${id} exists already`);
    }
    const image = this.made.ensureImage(spec.image);
    this.s.starting.add(id);
    const live: Live = { proxies: [], budget: new ConnectionBudget() };
    try {
      const warm = await this.made.takeAlive(spec.image, limits.diskMib, (w) => this.s.names.set(id, w.name));
      // The sandbox keeps its directory (runc needs the bundle where it was created); the lease id
      // is a link to it, made atomically, so two starts of one lease cannot both succeed.
      linkLease(warm.dir, warm.name, link);
      const dir = warm.dir;
      // Limits before anything of the lease's runs, then its deadline, then (atomically, as init
      // may look at any moment) the command that init starts.
      const cgroup = this.s.cgroupOf(warm.name);
      this.made.expect(spec.image, limits);
      // What the sandbox was made with is not written again (cgroup-limits.ts).
      const cpus = this.s.parentCpus.of(this.s.cgroups.mode, cgroup);
      const cpuset: [string, string][] = keepsCpus(warm.limits?.cpus, limits.vcpu, cpus)
        ? []
        : [[cpusetFile(this.s.cgroups.mode, cgroup), this.s.cpus.pick(limits.vcpu, cpus)]];
      applyLimits([
        ...limitWrites(this.s.cgroups.mode, cgroup, limits, this.s.cgroups.swapAccounting, {
          made: warm.limits,
        }),
        ...cpuset,
      ]);
      // lease.json is new here and nothing reads it before the lease's command runs (below): written
      // whole in place, without a temporary file and a rename. The deadline replaces the one init
      // reads at any moment, and command.sh is looked for by the starter: both atomically.
      writeFileSync(join(dir, 'run', 'lease.json'), leaseFile(id, deadline));
      writeAtomic(join(dir, 'run', 'deadline'), deadlineFile(deadline));
      writeAtomic(
        join(dir, 'run', 'command.sh'),
        commandFile(leaseArgv(image, spec.command), { ...image.env, ...spec.env }, image.working_dir),
      );
      if (limits.network === 'egress') await this.s.egress.attach(this.s.egressTarget(id, warm.name, limits));
      const ports: Record<string, number> = {};
      for (const port of spec.ports ?? []) {
        const proxy = new PortProxy(port, () => this.s.initPid(id), this.s.paths.busybox, live.budget);
        live.proxies.push(proxy);
        ports[port] = await proxy.listen();
      }
      const meta: SandboxMeta = {
        leaseId: id,
        image: spec.image,
        deadline: deadline.toISOString(),
        limits,
        env: spec.env ?? {},
        image_env: image.env,
        working_dir: image.working_dir,
        shell: image.shell,
        ports,
        container: warm.name,
      };
      // Through its link into the run state (layer-pool.ts): a new file on ext4 cost 0.3 to 0.7 ms
      // of the node's thread here, a tmpfs's a few dozen µs (bench/PROFILES.md, session 8).
      writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
      this.s.metas.set(id, meta);
      // init has been running since the sandbox was made; it reads the deadline again at least every
      // INIT_RECHECK_SECONDS, so it needs waking only for a deadline sooner than its next look (each
      // wake-up runs init's loop once, on the sandbox's CPU quota: a tiny offer's 1 ms per 100 ms
      // pays for the start's wake-ups and its first command's fork). Its starter is always woken,
      // to run the command.
      const woken = [wakeInit(dir, START_FIFO)];
      if (deadline.getTime() - Date.now() < (INIT_RECHECK_SECONDS + 5) * 1000) woken.push(wakeInit(dir));
      this.s.live.set(id, live);
      this.s.limitsById.set(id, limits);
      this.s.watched.add(id);
      // Written before the start returns: a node killed right after it leaves a sandbox that runs
      // its command and keeps its deadline.
      await Promise.all(woken);
      return { leaseId: id, deadline, ports: urls(ports) };
    } catch (e) {
      await Promise.all(live.proxies.map((p) => p.close()));
      const name = this.s.names.get(id);
      this.s.names.delete(id);
      this.s.metas.delete(id);
      if (name) {
        await this.s.egress.detach(join(this.s.paths.runtimeDir, name), name).catch(() => {});
        await this.s.rt.removeContainer(name).catch(() => {});
        await destroyDir(join(this.s.paths.runtimeDir, name), this.s.paths.busybox).catch(() => {});
        if (readLink(link) === name) rmSync(link, { force: true });
      }
      if (e instanceof AlacarteError) throw e;
      throw new AlacarteError('start_failed', 'the sandbox did not start', { cause: e });
    } finally {
      this.s.starting.delete(id);
      this.s.pool.replenish(spec.image, limits.diskMib);
      this.exits.scheduleReap();
    }
  }
}

/**
 * Makes `link` (the lease's id in the runtime directory) a symbolic link to the sandbox `name`:
 * a second name for the one made ahead in its directory (LEASE_LINK, host-fs.ts), or a new link
 * for a sandbox made without one (by an older node). Throws EEXIST when `link` exists.
 */
function linkLease(dir: string, name: string, link: string): void {
  try {
    linkSync(join(dir, LEASE_LINK), link);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    symlinkSync(name, link);
  }
}
