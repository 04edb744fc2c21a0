import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { AlacarteError } from '../../core/errors.js';
import { commandSchema, envSchema, parseLeaseInput, portsSchema } from '../../core/lease-request.js';
import type {
  AttachSession,
  ExecRequest,
  ExecResult,
  SandboxProcess,
  SandboxRef,
  SpawnRequest,
  TerminalSize,
} from '../compute-driver.js';
import { attachInSandbox, validSize } from './attach.js';
import { backgroundCommand, backgroundPid } from './background.js';
import { procsFile } from './cgroup-limits.js';
import { connectInSandbox } from './connect.js';
import type { DriverState } from './driver-state.js';
import { execInSandbox } from './exec.js';
import { ExecAgent } from './exec-agent.js';
import { FifoStock } from './fifo-stock.js';
import { DEFAULT_PATH } from './oci-spec.js';
import { OutputDrain } from './output-drain.js';
import { spawnerShell } from './run-process.js';
import { execFifoDir } from './run-state.js';
import type { SandboxMeta } from './sandbox-meta.js';
import { spawnInSandbox } from './spawn.js';

/**
 * Running commands in leases' sandboxes for the driver's exec, spawn, sftp, attach and connect:
 * the checks of what the caller asks, the environment a command gets (image, lease, request), the
 * node's side of each lease's exec agent with its FIFOs, and each lease's output drain.
 */
export class LeaseIo {
  /** Output pipes of returned execs still held by their background jobs, per lease (output-drain.ts). */
  private readonly drains = new Map<string, OutputDrain>();
  /** The node's side of each lease's exec agent (exec-agent.ts), made at its first exec. */
  private readonly agents = new Map<string, ExecAgent>();
  /** FIFOs for the agents' execs, made ahead (undefined without a spawner shell: no agent then). */
  private readonly execFifos: FifoStock | undefined;
  private legacyFifoStock: FifoStock | undefined;

  constructor(private readonly s: DriverState) {
    const spawner = spawnerShell();
    this.execFifos = spawner
      ? new FifoStock(
          execFifoDir(s.paths.runState),
          (fifos, owner) => spawner.mkfifo(fifos, owner),
          { uid: s.idBase, gid: s.idBase },
          // Drivers of one process share the directory: names of their own.
          `f${randomBytes(3).toString('hex')}-`,
        )
      : undefined;
  }

  /** Lets go of a lease's output drain and exec agent (its sandbox is being halted or removed). */
  release(id: string): void {
    this.drains.get(id)?.close();
    this.drains.delete(id);
    this.agents.get(id)?.close();
    this.agents.delete(id);
  }

  /** The driver's exec() (compute-driver.ts). */
  async exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult> {
    const id = this.s.requireRunning(sandbox);
    parseLeaseInput(commandSchema, request.command);
    if (!(request.timeoutMs > 0) || !(request.maxOutputBytes >= 0)) {
      throw new AlacarteError(
        'invalid_request',
        'timeoutMs must be positive and maxOutputBytes not negative',
      );
    }
    const meta = this.s.metas.meta(id);
    const env = this.envFor(meta, request.env);
    const command = request.background ? backgroundCommand(request.command, env) : request.command;
    const drain = this.drainOf(id);
    const result = await execInSandbox(
      {
        runtime: this.s.runtime.path,
        stateDir: this.s.paths.stateDir,
        containerId: this.s.rt.containerId(meta.container),
        pidFile: join(this.s.dir(id), `exec-${randomBytes(6).toString('hex')}.pid`),
        env,
        cwd: meta.working_dir,
        procsFile: procsFile(this.s.cgroups.mode, this.s.cgroupOf(meta.container)),
        drain,
        agent: this.agentOf(id, meta.container),
      },
      { ...request, command },
    );
    // A failure may mean the sandbox ended meanwhile (or is being ended: its processes killed); say
    // so rather than return the runtime's message or the killed command's status.
    if (result.exitCode !== 0 && (this.s.ending.has(id) || this.s.initPid(id) === undefined)) {
      throw new AlacarteError('lease_not_running', 'the sandbox has ended');
    }
    if (!request.background) return result;
    const pid = backgroundPid(result);
    return pid === undefined ? result : { ...result, stdout: Buffer.alloc(0), pid };
  }

  /** The driver's spawn() (compute-driver.ts): in the image's working directory, as exec. */
  spawn(sandbox: SandboxRef, request: SpawnRequest): Promise<SandboxProcess> {
    return this.spawnIn(sandbox, request, true);
  }

  /** A spawn; `inImageDir`: in the image's working directory (the tenant's commands), else in `/`. */
  private async spawnIn(
    sandbox: SandboxRef,
    request: SpawnRequest,
    inImageDir: boolean,
  ): Promise<SandboxProcess> {
    const id = this.s.requireRunning(sandbox);
    parseLeaseInput(commandSchema, request.command);
    const meta = this.s.metas.meta(id);
    return spawnInSandbox(
      {
        runtime: this.s.runtime.path,
        stateDir: this.s.paths.stateDir,
        containerId: this.s.rt.containerId(meta.container),
        pidFile: join(this.s.dir(id), `spawn-${randomBytes(6).toString('hex')}.pid`),
        env: this.envFor(meta, request.env),
        cwd: inImageDir ? meta.working_dir : undefined,
        procsFile: procsFile(this.s.cgroups.mode, this.s.cgroupOf(meta.container)),
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

  /** The driver's sftp() (compute-driver.ts). */
  async sftp(sandbox: SandboxRef): Promise<SandboxProcess> {
    if (!('command' in this.s.sftpServer))
      throw new AlacarteError('not_found', 'this node offers no SFTP (no sftp-server on the host)');
    // The node's own program, where the runtime starts it (`/`), as on the LXD driver.
    return this.spawnIn(sandbox, { command: this.s.sftpServer.command }, false);
  }

  /** The driver's connect() (compute-driver.ts). */
  async connect(sandbox: SandboxRef, port: number): Promise<Duplex> {
    const id = this.s.requireRunning(sandbox);
    parseLeaseInput(portsSchema, [port]);
    const pid = this.s.initPid(id);
    const live = this.s.live.get(id);
    if (pid === undefined || !live) throw new AlacarteError('lease_not_running', 'the sandbox has ended');
    const stream = connectInSandbox(pid, port, this.s.paths.busybox, live.budget);
    if (!stream) throw new AlacarteError('rate_limited', 'the lease holds its most connections already');
    return stream;
  }

  /** The driver's attach() (compute-driver.ts). */
  async attach(sandbox: SandboxRef, size: TerminalSize, command?: string[]): Promise<AttachSession> {
    const id = this.s.requireRunning(sandbox);
    if (!validSize(size)) throw new AlacarteError('invalid_request', 'terminal size must be 1 to 1000');
    if (command) parseLeaseInput(commandSchema, command);
    const meta = this.s.metas.meta(id);
    const containerId = this.s.rt.containerId(meta.container);
    const procs = procsFile(this.s.cgroups.mode, this.s.cgroupOf(meta.container));
    return attachInSandbox(
      {
        runtime: this.s.runtime.path,
        stateDir: this.s.paths.stateDir,
        containerId,
        pidFile: join(this.s.dir(id), `attach-${randomBytes(6).toString('hex')}.pid`),
        env: [...this.envFor(meta), 'TERM=xterm-256color'],
        cwd: meta.working_dir,
        busybox: this.s.paths.busybox,
        script: this.s.paths.script,
        command: command ?? [meta.shell ?? '/bin/sh'],
        procsFile: procs,
        execInside: (command, timeoutMs) =>
          execInSandbox(
            {
              runtime: this.s.runtime.path,
              stateDir: this.s.paths.stateDir,
              containerId,
              pidFile: join(this.s.dir(id), `exec-${randomBytes(6).toString('hex')}.pid`),
              env: [DEFAULT_PATH],
              procsFile: procs,
            },
            { command, timeoutMs, maxOutputBytes: 4096 },
          ),
      },
      size,
    );
  }

  /** The node's side of a lease's exec agent, undefined when this driver runs none (no spawner shell). */
  private agentOf(leaseId: string, container: string): ExecAgent | undefined {
    if (!this.execFifos) return undefined;
    let agent = this.agents.get(leaseId);
    if (!agent) {
      // The sandbox's own directory, not the lease's link to it: in the run state (run-state.ts),
      // or for a sandbox made by a node before it, run/ in its directory, with FIFOs made on that
      // file system (they are renamed into it).
      const inState = join(this.s.paths.runState, container, 'run');
      let inRunState = false;
      try {
        inRunState = statSync(inState).isDirectory();
      } catch {
        // made before the run state
      }
      const owner = { uid: this.s.idBase, gid: this.s.idBase };
      agent = inRunState
        ? new ExecAgent(inState, this.execFifos, owner)
        : new ExecAgent(join(this.s.paths.runtimeDir, container, 'run'), this.legacyFifos(), owner);
      this.agents.set(leaseId, agent);
    }
    return agent;
  }

  /** FIFOs for the agents of sandboxes made before the run state, in the runtime directory (made once asked for). */
  private legacyFifos(): FifoStock {
    const spawner = spawnerShell();
    if (!spawner) throw new Error('no spawner shell');
    this.legacyFifoStock ??= new FifoStock(
      execFifoDir(this.s.paths.runtimeDir),
      (fifos, owner) => spawner.mkfifo(fifos, owner),
      { uid: this.s.idBase, gid: this.s.idBase },
      `f${randomBytes(3).toString('hex')}-`,
    );
    return this.legacyFifoStock;
  }

  private envFor(meta: SandboxMeta, extra: Record<string, string> = {}): string[] {
    parseLeaseInput(envSchema, extra);
    // One entry per name, later ones winning: with duplicates, most programs would see the first.
    const [pathName, pathValue] = DEFAULT_PATH.split(/=(.*)/s) as [string, string];
    const env = { [pathName]: pathValue, HOME: '/root', ...meta.image_env, ...meta.env, ...extra };
    return Object.entries(env).map(([k, v]) => `${k}=${v}`);
  }
}
