import { randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { AlacarteError } from '../../core/errors.js';
import {
  commandSchema,
  deadlineAllowed,
  envSchema,
  parseLeaseInput,
  portsSchema,
} from '../../core/lease-request.js';
import { DEFAULT_BANDWIDTH_MBIT } from '../../core/offers.js';
import { availableCapacity, type HostResources, type OvercommitSettings } from '../capacity.js';
import {
  type AttachSession,
  type ComputeDriver,
  type DriverCapacity,
  type ExecRequest,
  type ExecResult,
  SANDBOX_ID_PATTERN,
  type SandboxHandle,
  type SandboxInfo,
  type SandboxLimits,
  type SandboxProcess,
  type SandboxRef,
  type SandboxSpec,
  type SpawnRequest,
  type TerminalSize,
} from '../compute-driver.js';
import { attachInSandbox, validSize } from './attach.js';
import { backgroundCommand, backgroundPid } from './background.js';
import { applyLimits, limitWrites, procsFile } from './cgroup-limits.js';
import { connectInSandbox } from './connect.js';
import { ContainerRuntime, tail } from './container-runtime.js';
import { CpuPicker, cpusetFile, ParentCpus } from './cpuset.js';
import type { CrunDriverOptions, DriverLogger } from './crun-options.js';
import type { EgressNetwork } from './egress.js';
import { execInSandbox } from './exec.js';
import { ExecAgent } from './exec-agent.js';
import { FifoStock } from './fifo-stock.js';
import { LEASE_LINK } from './host-fs.js';
import { type DriverPaths, type HostSetup, setUpHost } from './host-setup.js';
import { type ImageConfig, leaseArgv, readImageConfig } from './image-config.js';
import { InitPids, livePids, untilAgentReads, untilInitRuns, wakeInit } from './init-process.js';
import { commandFile, deadlineFile, INIT_RECHECK_SECONDS, leaseFile, START_FIFO } from './init-script.js';
import { deleteThenDestroyDir, destroyDir, etcIsLink, LayerPool, type WarmSandbox } from './layer-pool.js';
import { validateLimits, validateSpec } from './lease-checks.js';
import type { DriverLxcfs } from './lxcfs.js';
import { DEFAULT_PATH, IN_SANDBOX, ociSpec } from './oci-spec.js';
import { OutputDrain } from './output-drain.js';
import { ConnectionBudget, PortProxy } from './port-proxy.js';
import { type CgroupLayout, ensureImageOwnership, type RuntimeInfo } from './preflight.js';
import { runDetached, runProcess, spawnerShell } from './run-process.js';
import { closeRunState, execFifoDir, sweepRunState } from './run-state.js';
import { MetaCache, type SandboxMeta, urls, writeAtomic } from './sandbox-meta.js';
import { spawnInSandbox } from './spawn.js';

export { validateLimits, validateSpec } from './lease-checks.js';

/** How long a made-ahead sandbox may wait for a lease before its own init ends it. */
const WARM_LIFETIME_MS = 3_600_000;

/** Limits a sandbox is created with while it waits in the pool; start() writes the offer's. */
const PLACEHOLDER_LIMITS = { vcpu: 1, memoryMib: 256, pids: 64 };

interface Live {
  proxies: PortProxy[];
  /** Relayed connections of the lease: its published ports and connect() together. */
  budget: ConnectionBudget;
}

/** How often watch() looks whether the inits of the watched sandboxes still run (a few /proc reads each). */
const EXIT_POLL_MS = 500;

/** Shortest time between two scans for sandboxes that ended on their own after starts (reapEnded). */
const REAP_GAP_MS = 500;

/**
 * ComputeDriver on crun (or runc): one OCI container per lease, made and started ahead, detached,
 * so that no per-sandbox process of ours stays behind. See src/drivers/crun/README.md.
 */
export class CrunDriver implements ComputeDriver {
  readonly id = 'crun';
  private readonly live = new Map<string, Live>();
  /** Output pipes of returned execs still held by their background jobs, per lease (output-drain.ts). */
  private readonly drains = new Map<string, OutputDrain>();
  /** The node's side of each lease's exec agent (exec-agent.ts), made at its first exec. */
  private readonly agents = new Map<string, ExecAgent>();
  /** FIFOs for the agents' execs, made ahead (undefined without a spawner shell: no agent then). */
  private readonly execFifos: FifoStock | undefined;
  private readonly starting = new Set<string>();
  /** lease id -> container name, for sandboxes this process knows. */
  private readonly names = new Map<string, string>();
  private readonly stopping = new Map<string, Promise<void>>();
  private readonly limitsById = new Map<string, SandboxLimits>();
  private readonly metas: MetaCache;
  private readonly inits: InitPids;
  private readonly rt: ContainerRuntime;
  /**
   * Images in use, by name: their root's identity (inode and change time, as inode numbers are
   * reused: a new one means the image was replaced) and config.
   */
  private readonly knownImages = new Map<string, { identity: string; config: ImageConfig }>();
  private readonly pool: LayerPool;
  /** Sandboxes whose init's end watch() reports: started by this process or found by list(). */
  private readonly watched = new Set<string>();
  private readonly exitListeners = new Set<(leaseId: string) => void>();
  private exitTimer: NodeJS.Timeout | undefined;
  private readonly cpus = new CpuPicker();
  private readonly parentCpus = new ParentCpus();
  /** Made-ahead sandbox name -> device of the lxcfs it binds, as seen answering when it was made. */
  private readonly lxcfsDevices = new Map<string, number>();

  private readonly runtime: RuntimeInfo;
  private readonly cgroups: CgroupLayout;
  private readonly paths: DriverPaths;
  private readonly instance: string;
  private readonly idBase: number;
  private readonly idCount: number;
  private readonly cgroupParent: string;
  private readonly host: HostResources;
  private readonly overcommit: OvercommitSettings;
  private readonly log: DriverLogger;
  /** The lxcfs whose proc files sandboxes bind (lxcfs.ts). */
  private readonly lxcfs: DriverLxcfs;
  /** How sftp() runs OpenSSH's sftp-server inside (sftp-server.ts), or why it cannot. */
  private readonly sftpServer: { command: string[] } | { missing: string };
  private readonly egress: EgressNetwork;

  private constructor(setup: HostSetup) {
    ({
      runtime: this.runtime,
      cgroups: this.cgroups,
      paths: this.paths,
      instance: this.instance,
      idBase: this.idBase,
      idCount: this.idCount,
      cgroupParent: this.cgroupParent,
      host: this.host,
      overcommit: this.overcommit,
      log: this.log,
      lxcfs: this.lxcfs,
      sftpServer: this.sftpServer,
      egress: this.egress,
    } = setup);
    const { paths, idBase, instance, runtime, log, egress, warmLayers, warmLayersMax, warmConcurrency } =
      setup;
    this.metas = new MetaCache(paths.runtimeDir);
    this.inits = new InitPids(
      (leaseId) => this.dir(leaseId),
      (leaseId) => this.knownCgroupPath(leaseId),
    );
    this.rt = new ContainerRuntime(runtime, paths.stateDir, instance);
    this.pool = new LayerPool({
      runtimeDir: paths.runtimeDir,
      runStateDir: paths.runState,
      imagesDir: paths.imagesDir,
      busybox: paths.busybox,
      idBase,
      size: warmLayers,
      maxSize: warmLayers === 0 ? 0 : warmLayersMax,
      concurrency: warmConcurrency,
      // Refills wait for a moment without starts, so that a burst's own takes do not slow it down.
      busy: () => this.starting.size > 0,
      logger: log,
      resolvConf: egress.resolvConf(),
      create: (warm, image, diskMib) => this.createContainer(warm, image, diskMib),
      discard: (warm) => {
        this.lxcfsDevices.delete(warm.name);
        return this.rt.removeContainer(warm.name);
      },
    });
    const spawner = spawnerShell();
    this.execFifos = spawner
      ? new FifoStock(
          execFifoDir(paths.runState),
          (fifos, owner) => spawner.mkfifo(fifos, owner),
          { uid: idBase, gid: idBase },
          // Drivers of one process share the directory: names of their own.
          `f${randomBytes(3).toString('hex')}-`,
        )
      : undefined;
  }

  /**
   * Checks the host (runtime, cgroups, busybox, images) and fixes what it may, then returns a driver
   * that already knows the sandboxes a previous process left running. Throws DriverPreflightError
   * with one message saying what to install or change.
   */
  static async create(options: CrunDriverOptions): Promise<CrunDriver> {
    const setup = await setUpHost(options);
    const driver = new CrunDriver(setup);
    await driver.list();
    const { runtime, cgroups, paths } = setup;
    setup.log.info(
      `alacarte: ${runtime.name} driver ready (${runtime.version}, cgroups ${cgroups.mode}, state ${paths.stateDir}, sandboxes in ${paths.runtimeDir})`,
    );
    return driver;
  }

  /**
   * Makes sandboxes for an image and disk size ahead of the first start (for the offers the node
   * sells), so that even the first paid start is fast. Returns at once; the work runs behind.
   */
  prewarm(image: string, diskMib: number): void {
    this.ensureImage(image);
    this.pool.want(image, diskMib);
    this.pool.replenish(image, diskMib);
  }

  async capacity(): Promise<DriverCapacity> {
    const running: SandboxLimits[] = [];
    const leases = new Set<string>();
    // No /proc read per sandbox here (GET /v1/offers asks this, with a thousand sandboxes running):
    // a sandbox counts until watch()'s poll has seen its init end, or it was halted or stopped.
    for (const [id, limits] of this.limitsById) {
      if (this.starting.has(id) || this.watched.has(id)) {
        running.push(limits);
        leases.add(id);
      }
    }
    return {
      ...availableCapacity(this.host, this.overcommit, running),
      egress: this.egress.unavailable === undefined,
      leases,
    };
  }

  async start(spec: SandboxSpec, limits: SandboxLimits, deadline: Date): Promise<SandboxHandle> {
    validateSpec(spec);
    validateLimits(limits);
    if (!deadlineAllowed(deadline))
      throw new AlacarteError('invalid_request', 'deadline is not a date up to year 9999');
    const id = spec.leaseId;
    const link = join(this.paths.runtimeDir, id);
    if (this.starting.has(id) || this.stopping.has(id) || existsLink(link)) {
      throw new AlacarteError('invalid_request', `a sandbox for ${id} exists already`);
    }
    const image = this.ensureImage(spec.image);
    this.starting.add(id);
    const live: Live = { proxies: [], budget: new ConnectionBudget() };
    try {
      const warm = await this.takeAlive(spec.image, limits.diskMib, (w) => this.names.set(id, w.name));
      // The sandbox keeps its directory (runc needs the bundle where it was created); the lease id
      // is a link to it, made atomically, so two starts of one lease cannot both succeed.
      linkLease(warm.dir, warm.name, link);
      const dir = warm.dir;
      // Limits before anything of the lease's runs, then its deadline, then (atomically, as init
      // may look at any moment) the command that init starts.
      const cgroup = this.cgroupOf(warm.name);
      applyLimits([
        ...limitWrites(this.cgroups.mode, cgroup, limits, this.cgroups.swapAccounting),
        [
          cpusetFile(this.cgroups.mode, cgroup),
          this.cpus.pick(limits.vcpu, this.parentCpus.of(this.cgroups.mode, cgroup)),
        ],
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
      if (limits.network === 'egress') await this.egress.attach(this.egressTarget(id, warm.name, limits));
      const ports: Record<string, number> = {};
      for (const port of spec.ports ?? []) {
        const proxy = new PortProxy(port, () => this.initPid(id), this.paths.busybox, live.budget);
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
      this.metas.set(id, meta);
      // init has been running since the sandbox was made; it reads the deadline again at least every
      // INIT_RECHECK_SECONDS, so it needs waking only for a deadline sooner than its next look (each
      // wake-up runs init's loop once, on the sandbox's CPU quota: a tiny offer's 1 ms per 100 ms
      // pays for the start's wake-ups and its first command's fork). Its starter is always woken,
      // to run the command.
      const woken = [wakeInit(dir, START_FIFO)];
      if (deadline.getTime() - Date.now() < (INIT_RECHECK_SECONDS + 5) * 1000) woken.push(wakeInit(dir));
      this.live.set(id, live);
      this.limitsById.set(id, limits);
      this.watched.add(id);
      // Written before the start returns: a node killed right after it leaves a sandbox that runs
      // its command and keeps its deadline.
      await Promise.all(woken);
      return { leaseId: id, deadline, ports: urls(ports) };
    } catch (e) {
      await Promise.all(live.proxies.map((p) => p.close()));
      const name = this.names.get(id);
      this.names.delete(id);
      this.metas.delete(id);
      if (name) {
        await this.egress.detach(join(this.paths.runtimeDir, name), name).catch(() => {});
        await this.rt.removeContainer(name).catch(() => {});
        await destroyDir(join(this.paths.runtimeDir, name), this.paths.busybox).catch(() => {});
        if (readLink(link) === name) rmSync(link, { force: true });
      }
      if (e instanceof AlacarteError) throw e;
      throw new AlacarteError('start_failed', 'the sandbox did not start', { cause: e });
    } finally {
      this.starting.delete(id);
      this.pool.replenish(spec.image, limits.diskMib);
      // One scan of every sandbox per REAP_GAP_MS at most, however many starts end meanwhile: a
      // scan per start made a burst's cost grow with its square (100 starts, ~10,000 /proc reads),
      // and one per event-loop turn still read /proc ~2,500 times in a burst of 100.
      if (!this.reapScheduled && !this.closing) {
        this.reapScheduled = true;
        const run = () => {
          this.reapScheduled = false;
          this.lastReap = Date.now();
          if (!this.closing) void this.reapEnded();
        };
        const wait = this.lastReap + REAP_GAP_MS - Date.now();
        if (wait <= 0) setImmediate(run);
        else setTimeout(run, wait).unref();
      }
    }
  }

  async exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult> {
    const id = this.requireRunning(sandbox);
    parseLeaseInput(commandSchema, request.command);
    if (!(request.timeoutMs > 0) || !(request.maxOutputBytes >= 0)) {
      throw new AlacarteError(
        'invalid_request',
        'timeoutMs must be positive and maxOutputBytes not negative',
      );
    }
    const meta = this.metas.meta(id);
    const command = request.background ? backgroundCommand(request.command) : request.command;
    const drain = this.drainOf(id);
    const result = await execInSandbox(
      {
        runtime: this.runtime.path,
        stateDir: this.paths.stateDir,
        containerId: this.rt.containerId(meta.container),
        pidFile: join(this.dir(id), `exec-${randomBytes(6).toString('hex')}.pid`),
        env: this.envFor(meta, request.env),
        cwd: meta.working_dir,
        procsFile: procsFile(this.cgroups.mode, this.cgroupOf(meta.container)),
        drain,
        agent: this.agentOf(id, meta.container),
      },
      { ...request, command },
    );
    // A failure may mean the sandbox ended meanwhile; say so rather than return the runtime's message.
    if (result.exitCode !== 0 && this.initPid(id) === undefined) {
      throw new AlacarteError('lease_not_running', 'the sandbox has ended');
    }
    if (!request.background) return result;
    const pid = backgroundPid(result);
    return pid === undefined ? result : { ...result, stdout: Buffer.alloc(0), pid };
  }

  async spawn(sandbox: SandboxRef, request: SpawnRequest): Promise<SandboxProcess> {
    const id = this.requireRunning(sandbox);
    parseLeaseInput(commandSchema, request.command);
    const meta = this.metas.meta(id);
    return spawnInSandbox(
      {
        runtime: this.runtime.path,
        stateDir: this.paths.stateDir,
        containerId: this.rt.containerId(meta.container),
        pidFile: join(this.dir(id), `spawn-${randomBytes(6).toString('hex')}.pid`),
        env: this.envFor(meta, request.env),
        procsFile: procsFile(this.cgroups.mode, this.cgroupOf(meta.container)),
        drain: this.drainOf(id),
      },
      request.command,
    );
  }

  /** The lease's OutputDrain (output-drain.ts), made on first use. */
  private drainOf(id: string): OutputDrain {
    const drain = this.drains.get(id) ?? new OutputDrain();
    this.drains.set(id, drain);
    return drain;
  }

  async sftp(sandbox: SandboxRef): Promise<SandboxProcess> {
    if (!('command' in this.sftpServer))
      throw new AlacarteError('not_found', 'this node offers no SFTP (no sftp-server on the host)');
    return this.spawn(sandbox, { command: this.sftpServer.command });
  }

  async connect(sandbox: SandboxRef, port: number): Promise<Duplex> {
    const id = this.requireRunning(sandbox);
    parseLeaseInput(portsSchema, [port]);
    const pid = this.initPid(id);
    const live = this.live.get(id);
    if (pid === undefined || !live) throw new AlacarteError('lease_not_running', 'the sandbox has ended');
    const stream = connectInSandbox(pid, port, this.paths.busybox, live.budget);
    if (!stream) throw new AlacarteError('rate_limited', 'the lease holds its most connections already');
    return stream;
  }

  async attach(sandbox: SandboxRef, size: TerminalSize, command?: string[]): Promise<AttachSession> {
    const id = this.requireRunning(sandbox);
    if (!validSize(size)) throw new AlacarteError('invalid_request', 'terminal size must be 1 to 1000');
    if (command) parseLeaseInput(commandSchema, command);
    const meta = this.metas.meta(id);
    const containerId = this.rt.containerId(meta.container);
    const procs = procsFile(this.cgroups.mode, this.cgroupOf(meta.container));
    return attachInSandbox(
      {
        runtime: this.runtime.path,
        stateDir: this.paths.stateDir,
        containerId,
        pidFile: join(this.dir(id), `attach-${randomBytes(6).toString('hex')}.pid`),
        env: [...this.envFor(meta), 'TERM=xterm-256color'],
        cwd: meta.working_dir,
        busybox: this.paths.busybox,
        script: this.paths.script,
        command: command ?? [meta.shell ?? '/bin/sh'],
        procsFile: procs,
        execInside: (command, timeoutMs) =>
          execInSandbox(
            {
              runtime: this.runtime.path,
              stateDir: this.paths.stateDir,
              containerId,
              pidFile: join(this.dir(id), `exec-${randomBytes(6).toString('hex')}.pid`),
              env: [DEFAULT_PATH],
              procsFile: procs,
            },
            { command, timeoutMs, maxOutputBytes: 4096 },
          ),
      },
      size,
    );
  }

  async setDeadline(sandbox: SandboxRef, deadline: Date): Promise<void> {
    const id = this.requireRunning(sandbox);
    if (!deadlineAllowed(deadline))
      throw new AlacarteError('invalid_request', 'deadline is not a date up to year 9999');
    const dir = this.dir(id);
    this.writeDeadline(dir, id, deadline);
    const meta = { ...this.metas.meta(id), deadline: deadline.toISOString() };
    // Where its link leads (the run state), so that the replacement stays there.
    writeAtomic(realpathSync(join(dir, 'meta.json')), JSON.stringify(meta));
    this.metas.set(id, meta);
    // Wake init so that a deadline moved earlier takes effect now, not at its next check.
    await wakeInit(dir);
  }

  /** The host pid of a sandbox's init, only while it is alive and really ours (pids get reused). */
  initPid(leaseId: string): number | undefined {
    return this.inits.initPid(leaseId);
  }

  async isRunning(sandbox: SandboxRef): Promise<boolean> {
    return SANDBOX_ID_PATTERN.test(sandbox.leaseId) && this.initPid(sandbox.leaseId) !== undefined;
  }

  /**
   * Polls the inits of the watched sandboxes (EXIT_POLL_MS): Node offers no pidfd, and an init is
   * not our child (the runtime detaches it), so nothing would tell us of its end otherwise. A
   * sandbox stays watched until its end is reported, even when stop() or the clean-up after starts
   * removed it first, so no death goes unreported.
   */
  watch(onExit: (leaseId: string) => void): () => void {
    this.exitListeners.add(onExit);
    if (this.exitTimer === undefined) {
      this.exitTimer = setInterval(() => this.reportExits(), EXIT_POLL_MS);
      this.exitTimer.unref();
    }
    return () => {
      this.exitListeners.delete(onExit);
      if (this.exitListeners.size === 0 && this.exitTimer !== undefined) {
        clearInterval(this.exitTimer);
        this.exitTimer = undefined;
      }
    };
  }

  private reportExits(): void {
    for (const id of [...this.watched]) {
      if (this.starting.has(id) || this.initPid(id) !== undefined) continue;
      this.watched.delete(id);
      for (const listener of this.exitListeners) {
        try {
          listener(id);
        } catch (e) {
          this.log.warn(`alacarte: an exit listener failed for ${id}: ${String(e)}`);
        }
      }
    }
  }

  async stop(sandbox: SandboxRef): Promise<void> {
    const id = sandbox.leaseId;
    if (!SANDBOX_ID_PATTERN.test(id)) return;
    // Concurrent stops of one sandbox (the lease service, the reaper) share one removal.
    const pending = this.stopping.get(id);
    if (pending) return pending;
    const removal = this.remove(id).finally(() => this.stopping.delete(id));
    this.stopping.set(id, removal);
    return removal;
  }

  async halt(sandbox: SandboxRef): Promise<void> {
    const id = sandbox.leaseId;
    if (!SANDBOX_ID_PATTERN.test(id)) return;
    const name = this.containerName(id);
    if (name === undefined) return;
    const live = this.live.get(id);
    this.live.delete(id);
    this.drains.get(id)?.close();
    this.drains.delete(id);
    this.agents.get(id)?.close();
    this.agents.delete(id);
    // Its resources are free for the next lease from now on (capacity()).
    this.limitsById.delete(id);
    if (live) await Promise.all(live.proxies.map((p) => p.close()));
    // init is the sandbox's pid namespace's first process: once it dies the kernel kills every
    // other process of the namespace, and no new one can enter it. Everything in its cgroup is
    // killed too, for what joined the cgroup but not the namespace. No process spawn: a few
    // /proc and cgroup reads, then kill(2).
    const procs = procsFile(this.cgroups.mode, this.cgroupOf(name));
    for (let i = 0; i < 400; i++) {
      const pids = livePids(procs);
      const init = this.initPid(id);
      if (init !== undefined) pids.push(init);
      if (pids.length === 0) return;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await new Promise((r) => (i < 20 ? setImmediate(r) : setTimeout(r, 5)));
    }
    throw new Error(`the processes of sandbox ${id} did not end`);
  }

  private async remove(id: string): Promise<void> {
    const live = this.live.get(id);
    this.live.delete(id);
    this.drains.get(id)?.close();
    this.drains.delete(id);
    this.agents.get(id)?.close();
    this.agents.delete(id);
    if (live) await Promise.all(live.proxies.map((p) => p.close()));
    const name = this.containerName(id);
    if (name) {
      await this.egress
        .detach(join(this.paths.runtimeDir, name), name)
        .catch((e: unknown) => this.log.warn(`alacarte: removing the egress of ${id} failed: ${String(e)}`));
      await deleteThenDestroyDir(join(this.paths.runtimeDir, name), this.paths.busybox, {
        path: this.runtime.path,
        stateDir: this.paths.stateDir,
        containerId: this.rt.containerId(name),
      });
    }
    rmSync(join(this.paths.runtimeDir, id), { force: true });
    this.limitsById.delete(id);
    this.inits.forget(id);
    this.names.delete(id);
    this.metas.delete(id);
  }

  async list(): Promise<SandboxInfo[]> {
    // Directory first, runtime second: a lease linked in this snapshot that was not starting then
    // had finished starting before the runtime was asked, so the runtime's status for it is current.
    const entries = readdirSync(this.paths.runtimeDir);
    const startingThen = new Set(this.starting);
    const containers = await this.rt.containers();
    const leaseOf = new Map<string, string>();
    for (const entry of entries) {
      if (!SANDBOX_ID_PATTERN.test(entry) || LayerPool.isPoolName(entry)) continue;
      const name = this.containerName(entry);
      if (name) leaseOf.set(name, entry);
    }
    // Waiting in the pool, being made, or given to a lease by this process: never a leftover.
    const ours = (name: string) => this.pool.holds(name) || [...this.names.values()].includes(name);
    const starting = (id: string) => startingThen.has(id) || this.starting.has(id);
    const out: SandboxInfo[] = [];
    const handled = new Set<string>();
    // Egress networks to keep: those of live sandboxes and of starts under way (theirs or a pool's).
    const withEgress = new Set<string>([...this.names.values()]);
    for (const c of containers) {
      handled.add(c.name);
      const id = leaseOf.get(c.name);
      if (id === undefined) {
        if (ours(c.name)) continue;
        this.log.info(`alacarte: removing leftover container ${c.name} (${c.status})`);
        await this.rt.removeContainer(c.name).catch(() => {});
        await destroyDir(join(this.paths.runtimeDir, c.name), this.paths.busybox).catch(() => {});
        continue;
      }
      handled.add(id);
      if (starting(id) || this.stopping.has(id)) continue;
      let meta: SandboxMeta | undefined;
      try {
        meta = this.metas.readMeta(id);
      } catch {
        meta = undefined;
      }
      // Belt and braces: init ends the sandbox at its deadline; anything past it by 5 s goes now.
      const overdue = meta !== undefined && Date.parse(meta.deadline) + 5000 < Date.now();
      if (c.status !== 'running' || meta === undefined || overdue || this.initPid(id) === undefined) {
        this.log.info(
          `alacarte: cleaning up sandbox ${id} (${c.status}${overdue ? ', past its deadline' : ''})`,
        );
        await this.stop({ leaseId: id });
        continue;
      }
      this.limitsById.set(id, meta.limits);
      this.watched.add(id);
      if (!this.live.has(id)) await this.reopenPorts(id, meta);
      if (meta.limits.network === 'egress') {
        withEgress.add(c.name);
        // Failing closed: without its pasta the sandbox has no network, which is no reason to fail list().
        try {
          await this.egress.restore(this.egressTarget(id, c.name, meta.limits));
        } catch (e) {
          this.log.warn(`alacarte: the egress of ${id} could not be restored: ${String(e)}`);
        }
      }
      out.push({ leaseId: id, deadline: new Date(meta.deadline), ports: urls(meta.ports) });
    }
    // Remains without a container: a start or a preparation that crashed half-way.
    for (const entry of entries) {
      if (!SANDBOX_ID_PATTERN.test(entry) || handled.has(entry)) continue;
      if (LayerPool.isPoolName(entry)) {
        if (ours(entry) || leaseOf.has(entry)) continue;
        this.log.info(`alacarte: removing the remains of sandbox directory ${entry}`);
        await destroyDir(join(this.paths.runtimeDir, entry), this.paths.busybox).catch(() => {});
      } else if (!starting(entry) && !this.stopping.has(entry)) {
        this.log.info(`alacarte: removing the remains of sandbox ${entry}`);
        await this.stop({ leaseId: entry });
      }
    }
    await this.egress.sweep(withEgress);
    // Run directories whose sandbox directory is gone (a removal cut short by a crash).
    for (const name of sweepRunState(
      this.paths.runState,
      this.paths.runtimeDir,
      (n) => !LayerPool.isPoolName(n) || ours(n),
    ))
      this.log.info(`alacarte: removed the run directory of sandbox ${name}, whose sandbox is gone`);
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
  private async sweepMadeForNobody(): Promise<void> {
    const entries = readdirSync(this.paths.runtimeDir);
    // Only what this driver's pool began making and never handed to a take (a lease's sandbox is
    // never among them): another driver over the same directories has sandboxes of its own there.
    const mine = this.pool.unsettledNames();
    const kept = (name: string) => !mine.has(name) || this.pool.holds(name);
    for (const c of await this.rt.containers()) {
      if (kept(c.name)) continue;
      this.log.info(`alacarte: removing container ${c.name}, made ahead for nobody (${c.status})`);
      await this.rt.removeContainer(c.name).catch(() => {});
      await destroyDir(join(this.paths.runtimeDir, c.name), this.paths.busybox).catch(() => {});
    }
    for (const entry of entries) {
      if (!LayerPool.isPoolName(entry) || kept(entry)) continue;
      await destroyDir(join(this.paths.runtimeDir, entry), this.paths.busybox).catch(() => {});
    }
    sweepRunState(this.paths.runState, this.paths.runtimeDir, kept);
  }

  /** close() has run (it may run again: the run state is let go of once). */
  private closed = false;
  /** close() has begun: no scan for ended sandboxes starts any more. */
  private closing = false;

  async close(): Promise<void> {
    this.closing = true;
    if (this.exitTimer !== undefined) clearInterval(this.exitTimer);
    this.exitTimer = undefined;
    this.exitListeners.clear();
    await this.pool.close();
    await this.sweepMadeForNobody().catch((e: unknown) =>
      this.log.warn(`alacarte: removing sandboxes made ahead failed: ${String(e)}`),
    );
    for (const live of this.live.values()) await Promise.all(live.proxies.map((p) => p.close()));
    this.live.clear();
    await this.egress.close();
    // With no sandbox left, leave no empty state or cgroup directories either (best effort: these
    // fail while anything is still in them, which is what should happen). On a hybrid host crun
    // makes each sandbox's cgroup in the unified (v2) hierarchy too, which cgroupParents() leaves
    // out (nothing is written there): without it every node left an empty directory behind.
    const unified =
      this.cgroups.mode === 'hybrid'
        ? [join('/sys/fs/cgroup/unified', this.cgroupParent, this.instance)]
        : [];
    for (const dir of [this.paths.stateDir, ...this.cgroupParents(), ...unified]) {
      try {
        rmdirSync(dir);
      } catch {
        // still in use, or gone
      }
    }
    if (!this.closed) await closeRunState(this.paths.runState, this.paths.busybox).catch(() => {});
    this.closed = true;
  }

  private egressTarget(leaseId: string, name: string, limits: SandboxLimits) {
    const initPid = this.initPid(leaseId);
    if (initPid === undefined) throw new Error('the sandbox has ended');
    const cgroup = this.cgroupOf(name);
    const procsFiles =
      this.cgroups.mode === 'v2'
        ? [join('/sys/fs/cgroup', cgroup, 'cgroup.procs')]
        : this.cgroupParents().map((parent) => join(parent, name, 'cgroup.procs'));
    return {
      dir: join(this.paths.runtimeDir, name),
      name,
      initPid,
      bandwidthMbit: limits.bandwidthMbit ?? DEFAULT_BANDWIDTH_MBIT,
      procsFiles,
    };
  }

  private cgroupParents(): string[] {
    const root = '/sys/fs/cgroup';
    const path = `${this.cgroupParent}/${this.instance}`;
    if (this.cgroups.mode === 'v2') return [join(root, path)];
    try {
      return readdirSync(root)
        .filter((h) => h !== 'unified')
        .map((h) => join(root, h, path));
    } catch {
      return [];
    }
  }

  /** A reapEnded() is queued. */
  private reapScheduled = false;
  /** When (Date.now()) the last reapEnded() began. */
  private lastReap = 0;

  /**
   * Removes what sandboxes that ended on their own (deadline) still hold: their writable layer is
   * memory. Runs after starts (at most once per REAP_GAP_MS), off their path; list() does the same
   * for sandboxes of earlier processes.
   */
  private async reapEnded(): Promise<void> {
    for (const id of [...this.live.keys()]) {
      if (this.starting.has(id) || this.initPid(id) !== undefined) continue;
      await this.stop({ leaseId: id }).catch((e: unknown) =>
        this.log.warn(`alacarte: cleaning up ended sandbox ${id} failed: ${String(e)}`),
      );
    }
  }

  /**
   * For tests and benchmarks: sandboxes of (image, disk size) waiting made ahead, and how many
   * starts found none waiting and had one made on their path.
   */
  madeAhead(image: string, diskMib: number): { waiting: number; madeOnDemand: number } {
    return {
      waiting: this.pool.waiting(image, diskMib),
      madeOnDemand: this.pool.madeOnDemand(image, diskMib),
    };
  }

  /** For tests and benchmarks: where a sandbox's processes are accounted. */
  cgroupPath(leaseId: string): string {
    const path = this.knownCgroupPath(leaseId);
    if (path === undefined) throw new AlacarteError('lease_not_running', 'no sandbox for this lease');
    return path;
  }

  private knownCgroupPath(leaseId: string): string | undefined {
    const name = this.containerName(leaseId);
    return name === undefined ? undefined : this.cgroupOf(name);
  }

  private cgroupOf(name: string): string {
    return `${this.cgroupParent}/${this.instance}/${name}`;
  }

  /** The container behind a lease, from memory or, after a restart, from its meta.json. */
  private containerName(leaseId: string): string | undefined {
    const known = this.names.get(leaseId);
    if (known) return known;
    const name = readLink(join(this.paths.runtimeDir, leaseId));
    if (name === undefined || !LayerPool.isPoolName(name)) return undefined;
    this.names.set(leaseId, name);
    return name;
  }

  /** Writes the bundle of a sandbox made ahead and has the runtime create it (not start it). */
  private async createContainer(warm: WarmSandbox, image: string, diskMib: number): Promise<void> {
    const lxcfsDir = await this.lxcfs.forNewSandbox();
    const lxcfsDevice = lxcfsDir === undefined ? undefined : await this.lxcfs.answeringDevice();
    if (lxcfsDevice !== undefined) this.lxcfsDevices.set(warm.name, lxcfsDevice);
    const config = ociSpec({
      hostname: 'sandbox',
      rootfs: join(warm.dir, 'rootfs'),
      runDir: join(this.paths.runState, warm.name, 'run'),
      libDir: this.paths.libDir,
      limits: { ...PLACEHOLDER_LIMITS, diskMib },
      idBase: this.idBase,
      idCount: this.idCount,
      cgroupsPath: this.cgroupOf(warm.name),
      swapAccounting: this.cgroups.swapAccounting,
      lxcfsDir,
    });
    writeFileSync(join(warm.dir, 'config.json'), JSON.stringify(config));
    // Until a lease takes it, a made-ahead sandbox ends by itself after a while, like any other.
    writeAtomic(join(warm.dir, 'run', 'deadline'), deadlineFile(new Date(Date.now() + WARM_LIFETIME_MS)));
    const logFile = join(warm.dir, 'runtime.log');
    const code = await runDetached(this.runtime.path, [
      `--log=${logFile}`,
      '--root',
      this.paths.stateDir,
      'create',
      '--pid-file',
      join(warm.dir, 'init.pid'),
      '--bundle',
      warm.dir,
      this.rt.containerId(warm.name),
    ]);
    if (code !== 0) throw new Error(`${this.runtime.name} create exited ${code}: ${tail(logFile)}`);
    await this.rt.startContainer(warm.name, logFile);
    await untilInitRuns(warm.dir);
    await untilAgentReads(warm.dir, this.log);
    // The resolv.conf an egress lease needs is in the writable layer already (etcInLayer()), but
    // for an image whose /etc is a link: written from inside then, as the sandbox's root.
    if (!etcIsLink(join(this.paths.imagesDir, image))) return;
    await runProcess(this.runtime.path, [
      '--root',
      this.paths.stateDir,
      'exec',
      this.rt.containerId(warm.name),
      IN_SANDBOX.busybox,
      'sh',
      '-c',
      'mkdir -p /etc && rm -f /etc/resolv.conf && printf %s "$1" > /etc/resolv.conf',
      'sh',
      this.egress.resolvConf(),
    ]);
  }

  /** A made-ahead sandbox whose init still runs (one waiting too long has ended at its provisional deadline). */
  private async takeAlive(
    image: string,
    diskMib: number,
    claim: (warm: WarmSandbox) => void,
  ): Promise<WarmSandbox> {
    for (let i = 0; ; i++) {
      const warm = await this.pool.take(image, diskMib, claim);
      if (i >= 3 || (await this.poolInitAlive(warm))) return warm;
      this.log.warn(`alacarte: a waiting sandbox ${warm.name} had ended or lost its lxcfs; taking another`);
      await this.rt.removeContainer(warm.name).catch(() => {});
      await destroyDir(warm.dir, this.paths.busybox).catch(() => {});
    }
  }

  /**
   * Its init runs, and the lxcfs files it bound still answer (a killed lxcfs leaves them dead):
   * one check of the lxcfs shared by every take when it is the mount the sandbox bound, else an
   * open through the sandbox's own root.
   */
  private async poolInitAlive(warm: WarmSandbox): Promise<boolean> {
    const bound = this.lxcfsDevices.get(warm.name);
    this.lxcfsDevices.delete(warm.name);
    let pid: number;
    try {
      // Its run state too (a tmpfs entry): a sweep by another driver over the same directories can
      // remove it while init still runs, and start() then fails on the lease's files.
      if (!existsSync(join(warm.dir, 'run', START_FIFO))) return false;
      pid = Number.parseInt(readFileSync(join(warm.dir, 'init.pid'), 'utf8'), 10);
      if (!readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`:${this.cgroupOf(warm.name)}\n`))
        return false;
    } catch {
      return false;
    }
    if (bound !== undefined && (await this.lxcfs.answeringDevice()) === bound) return true;
    return this.lxcfs.answersIn(pid);
  }

  /** The node's side of a lease's exec agent, undefined when this driver runs none (no spawner shell). */
  private agentOf(leaseId: string, container: string): ExecAgent | undefined {
    if (!this.execFifos) return undefined;
    let agent = this.agents.get(leaseId);
    if (!agent) {
      // The sandbox's own directory, not the lease's link to it: in the run state (run-state.ts),
      // or for a sandbox made by a node before it, run/ in its directory, with FIFOs made on that
      // file system (they are renamed into it).
      const inState = join(this.paths.runState, container, 'run');
      let inRunState = false;
      try {
        inRunState = statSync(inState).isDirectory();
      } catch {
        // made before the run state
      }
      const owner = { uid: this.idBase, gid: this.idBase };
      agent = inRunState
        ? new ExecAgent(inState, this.execFifos, owner)
        : new ExecAgent(join(this.paths.runtimeDir, container, 'run'), this.legacyFifos(), owner);
      this.agents.set(leaseId, agent);
    }
    return agent;
  }

  /** FIFOs for the agents of sandboxes made before the run state, in the runtime directory (made once asked for). */
  private legacyFifos(): FifoStock {
    const spawner = spawnerShell();
    if (!spawner) throw new Error('no spawner shell');
    this.legacyFifoStock ??= new FifoStock(
      execFifoDir(this.paths.runtimeDir),
      (fifos, owner) => spawner.mkfifo(fifos, owner),
      { uid: this.idBase, gid: this.idBase },
      `f${randomBytes(3).toString('hex')}-`,
    );
    return this.legacyFifoStock;
  }

  private legacyFifoStock: FifoStock | undefined;

  private dir(leaseId: string): string {
    return join(this.paths.runtimeDir, leaseId);
  }

  private envFor(meta: SandboxMeta, extra: Record<string, string> = {}): string[] {
    parseLeaseInput(envSchema, extra);
    // One entry per name, later ones winning: with duplicates, most programs would see the first.
    const [pathName, pathValue] = DEFAULT_PATH.split(/=(.*)/s) as [string, string];
    const env = { [pathName]: pathValue, HOME: '/root', ...meta.image_env, ...meta.env, ...extra };
    return Object.entries(env).map(([k, v]) => `${k}=${v}`);
  }

  private requireRunning(sandbox: SandboxRef): string {
    const id = sandbox.leaseId;
    if (!SANDBOX_ID_PATTERN.test(id) || this.initPid(id) === undefined) {
      throw new AlacarteError('lease_not_running', 'no running sandbox for this lease');
    }
    return id;
  }

  /**
   * The image's config, once its owners are shifted. An image removed or replaced under the same
   * name (alacarte image rm/pull while the node runs) has a new root inode: its sandboxes made
   * ahead show the old tree, so they are dropped.
   */
  private ensureImage(image: string): ImageConfig {
    const dir = join(this.paths.imagesDir, image);
    const identity = () => {
      const st = statSync(dir);
      return `${st.ino}:${st.ctimeMs}`;
    };
    let seen: string;
    try {
      seen = identity();
    } catch {
      throw new AlacarteError('invalid_request', `unknown image ${image}`);
    }
    const known = this.knownImages.get(image);
    if (known?.identity === seen) return known.config;
    if (known) this.pool.forget(image);
    ensureImageOwnership(dir, this.idBase, this.log);
    const config = readImageConfig(dir);
    // After the shift, which changes the root's change time.
    this.knownImages.set(image, { identity: identity(), config });
    return config;
  }

  private writeDeadline(dir: string, leaseId: string, deadline: Date): void {
    writeAtomic(join(dir, 'run', 'lease.json'), leaseFile(leaseId, deadline));
    writeAtomic(join(dir, 'run', 'deadline'), deadlineFile(deadline));
  }

  private async reopenPorts(leaseId: string, meta: SandboxMeta): Promise<void> {
    const live: Live = { proxies: [], budget: new ConnectionBudget() };
    this.live.set(leaseId, live);
    for (const [inside, hostPort] of Object.entries(meta.ports)) {
      const proxy = new PortProxy(
        Number(inside),
        () => this.initPid(leaseId),
        this.paths.busybox,
        live.budget,
      );
      live.proxies.push(proxy);
      try {
        await proxy.listen(hostPort);
      } catch (e) {
        this.log.warn(`alacarte: port ${hostPort} of sandbox ${leaseId} could not be reopened: ${String(e)}`);
      }
    }
  }
}

function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
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

function existsLink(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
