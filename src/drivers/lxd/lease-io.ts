import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { AlacarteError } from '../../core/errors.js';
import { ENV_NAME_PATTERN } from '../../core/lease-request.js';
import { CappedBuffer, streamEnded as ended } from '../capped-output.js';
import {
  type AttachSession,
  type ExecRequest,
  type ExecResult,
  execDeadline,
  type SandboxProcess,
  type SandboxRef,
  type SpawnRequest,
  type TerminalSize,
} from '../compute-driver.js';
import { backgroundCommand, backgroundPid } from '../crun/background.js';
import { relayStream } from '../crun/connect.js';
import { ConnectionBudget, relayScript } from '../crun/port-proxy.js';
import type { DriverState } from './driver-state.js';
import { hangupScript, IN_INSTANCE, LXD_EXEC_DEFAULTS } from './in-instance.js';
import { KEY, leaseEnv, notRunning } from './instance-record.js';
import { type LxdExecProcess, lxdExec, resizeTerminal, sendSignal } from './lxd-exec.js';

/** How long an attach's end waits for the terminal's last output to arrive. */
const OUTPUT_DRAIN_MS = 5000;
/** Largest stdin an exec takes. */
const MAX_STDIN_BYTES = 16 << 20;

/**
 * Commands and connections into a lease's instance, all through LXD's exec API (lxd-exec.ts):
 * exec, spawn, sftp, attach and connect, and the driver's own commands that end or hang up what an
 * exec started (in-instance.ts).
 */
export class LeaseIo {
  constructor(private readonly s: DriverState) {}

  /**
   * Starts a process through the exec API, as lease_not_running when the instance is gone. The
   * tenant's commands (`tenant`: exec, spawn, attach) run in the image's working directory, as the
   * crun driver runs them, and end when the command does whatever it left holding its output
   * (lxdExec's `relayOutput`; not on a terminal); the driver's own (sftp-server, a port's `nc`) start
   * nothing that could hold their output and run where LXD starts them, without the two relays,
   * which spares the lease's pids.
   */
  private async startProcess(
    leaseId: string,
    command: string[],
    env: Record<string, string>,
    options: { tenant: boolean; terminal?: TerminalSize },
  ): Promise<LxdExecProcess> {
    if (command.length === 0 || command.some((a) => a.includes('\0')))
      throw new AlacarteError('invalid_request', 'bad command');
    for (const [k, v] of Object.entries(env))
      if (!ENV_NAME_PATTERN.test(k) || v.includes('\0'))
        throw new AlacarteError('invalid_request', `bad env ${k}`);
    const i = await this.s.running(leaseId);
    try {
      return await lxdExec(this.s.options.client, this.s.instanceName(leaseId), {
        command,
        env: { ...LXD_EXEC_DEFAULTS, ...leaseEnv(i), ...env },
        cwd: options.tenant ? i.config[KEY.cwd] : undefined,
        terminal: options.terminal,
        relayOutput: options.tenant,
      });
    } catch (e) {
      if (!(await this.s.isRunning({ leaseId }))) throw notRunning(leaseId);
      throw new AlacarteError('internal', `LXD exec failed: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Kills everything an exec started (in-instance.ts); best effort, the instance may be gone. */
  private async killTag(leaseId: string, tag: string): Promise<void> {
    // The script exits 1 when its last round still found some (killTagScript): again, a few times.
    for (let i = 0; i < 5; i++) {
      if ((await this.runBestEffort(leaseId, [IN_INSTANCE.busybox, 'sh', IN_INSTANCE.kill, tag])) !== 1)
        return;
    }
  }

  /**
   * Runs one of the driver's own commands in the instance to its end, no input, its output read
   * and dropped; a failure (the instance gone already) is ignored, as the callers' work is then done.
   * Resolves with the command's exit code, undefined when it could not run.
   */
  private async runBestEffort(leaseId: string, command: string[]): Promise<number | undefined> {
    try {
      const p = await lxdExec(this.s.options.client, this.s.instanceName(leaseId), { command, env: {} });
      p.stdin.end();
      p.stdout?.resume();
      p.stderr?.resume();
      return await p.exited;
    } catch {
      // gone already
      return undefined;
    }
  }

  /** The driver's exec() (compute-driver.ts): output capped, a timeout ends all it started. */
  async exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult> {
    const command = request.background ? backgroundCommand(request.command) : request.command;
    const stdin = request.stdin === undefined ? undefined : Buffer.from(request.stdin);
    if (stdin && stdin.length > MAX_STDIN_BYTES)
      throw new AlacarteError('invalid_request', 'stdin too large');
    // Ends when the command does, as crun's: what it left running keeps its output (drained inside).
    const p = await this.startProcess(sandbox.leaseId, command, request.env ?? {}, { tenant: true });
    const stdout = new CappedBuffer(request.maxOutputBytes);
    const stderr = new CappedBuffer(request.maxOutputBytes);
    p.stdout?.on('data', (b: Buffer) => stdout.push(b));
    p.stderr?.on('data', (b: Buffer) => stderr.push(b));
    p.stdin.end(stdin);
    let timedOut = false;
    let killing: Promise<void> | undefined;
    const cancel = execDeadline(request.timeoutMs, request.signal, () => {
      timedOut = true;
      sendSignal(p.control, 9);
      killing = this.killTag(sandbox.leaseId, p.tag);
    });
    try {
      const [code] = await Promise.all([p.exited, ended(p.stdout), ended(p.stderr)]);
      // A timed-out exec returns once all it started is gone, not while its processes still count.
      await killing;
      // Its command killed with the instance (stopped, or ended at its deadline): the lease ended,
      // which is what the caller is told, not the status the killed command left.
      if (code !== 0 && (this.s.ending.has(sandbox.leaseId) || !(await this.s.isRunning(sandbox))))
        throw notRunning(sandbox.leaseId);
      const result: ExecResult = {
        exitCode: timedOut ? 137 : code,
        stdout: stdout.value(),
        stderr: stderr.value(),
        truncated: stdout.truncated || stderr.truncated,
        timedOut,
      };
      if (request.background) {
        const pid = backgroundPid(result);
        return pid === undefined ? result : { ...result, stdout: Buffer.alloc(0), pid };
      }
      return result;
    } finally {
      cancel();
    }
  }

  /**
   * Ends when the command does, as crun's: a job it started (`server &` in an SSH command) keeps
   * running, its output drained inside the instance (in-instance.ts, RELAYED_EXEC_SCRIPT), while
   * everything the command wrote before it exited still reaches the reader, at the reader's pace.
   */
  async spawn(sandbox: SandboxRef, request: SpawnRequest): Promise<SandboxProcess> {
    return this.spawnProcess(sandbox, request, true);
  }

  /** spawn() of the tenant's command (`tenant`) or of the driver's own program (startProcess). */
  private async spawnProcess(
    sandbox: SandboxRef,
    request: SpawnRequest,
    tenant: boolean,
  ): Promise<SandboxProcess> {
    const p = await this.startProcess(sandbox.leaseId, request.command, request.env ?? {}, { tenant });
    const stdout = p.stdout as Duplex;
    const stderr = p.stderr as Duplex;
    let killed = false;
    let hungUp = false;
    const exited = Promise.all([p.exited, ended(stdout), ended(stderr)]).then(([code]) =>
      killed ? 137 : code,
    );
    return {
      stdin: p.stdin,
      stdout,
      stderr,
      exited,
      kill: () => {
        if (killed) return;
        killed = true;
        sendSignal(p.control, 9);
        void this.killTag(sandbox.leaseId, p.tag);
      },
      hangup: () => {
        if (hungUp || killed) return;
        hungUp = true;
        p.stdin.destroy();
        // Read and dropped from now on: a job the command left keeps running (the relays drain it).
        for (const s of [stdout, stderr]) {
          s.removeAllListeners('data');
          s.unpipe();
          s.resume();
        }
        if (!tenant) {
          // The driver's own programs (sftp-server, a port's relay) start nothing: ended outright.
          sendSignal(p.control, 9);
          return;
        }
        void this.hangupCommand(sandbox.leaseId, p.tag);
      },
    };
  }

  /** SIGHUPs the command of the exec tagged `tag` (in-instance.ts, hangupScript); best effort. */
  private async hangupCommand(leaseId: string, tag: string): Promise<void> {
    await this.runBestEffort(leaseId, [
      IN_INSTANCE.busybox,
      'sh',
      '-c',
      hangupScript(),
      'alacarte-hangup',
      tag,
    ]);
  }

  /** The driver's sftp() (compute-driver.ts): the node's sftp-server, run inside. */
  async sftp(sandbox: SandboxRef): Promise<SandboxProcess> {
    await this.s.running(sandbox.leaseId);
    if (!this.s.sftpCommand) throw new AlacarteError('not_found', 'this node has no SFTP server');
    return this.spawnProcess(sandbox, { command: this.s.sftpCommand }, false);
  }

  /** The driver's connect() (compute-driver.ts): `nc` inside, within the lease's connection budget. */
  async connect(sandbox: SandboxRef, port: number): Promise<Duplex> {
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      throw new AlacarteError('invalid_request', `bad port ${port}`);
    await this.s.running(sandbox.leaseId);
    let budget = this.s.budgets.get(sandbox.leaseId);
    if (!budget) {
      budget = new ConnectionBudget();
      this.s.budgets.set(sandbox.leaseId, budget);
    }
    if (!budget.take()) throw new AlacarteError('rate_limited', 'too many connections to this lease');
    let p: SandboxProcess;
    try {
      p = await this.spawnProcess(
        sandbox,
        {
          command: [IN_INSTANCE.busybox, 'sh', '-c', relayScript(IN_INSTANCE.busybox), 'relay', String(port)],
        },
        false,
      );
    } catch (e) {
      budget.release();
      throw e;
    }
    p.stderr.resume();
    return relayStream(p.stdin, p.stdout, () => p.kill(), budget);
  }

  /** The driver's attach() (compute-driver.ts): a terminal of the lease's shell (or `command`). */
  async attach(sandbox: SandboxRef, size: TerminalSize, command?: string[]): Promise<AttachSession> {
    if (!validSize(size)) throw new AlacarteError('invalid_request', 'bad terminal size');
    const i = await this.s.running(sandbox.leaseId);
    const p = await this.startProcess(
      sandbox.leaseId,
      command ?? [i.config[KEY.shell] ?? '/bin/sh'],
      { TERM: 'xterm-256color' },
      { tenant: true, terminal: size },
    );
    let closed = false;
    return {
      stream: p.stdin,
      resize: async (next) => {
        if (!validSize(next)) throw new AlacarteError('invalid_request', 'bad terminal size');
        await resizeTerminal(p.control, next.cols, next.rows);
      },
      // Once the terminal's last output is through too: LXD may answer the operation's end before
      // its websocket has delivered what the shell wrote last. Bounded, as nobody may be reading.
      exited: p.exited.then(async (code) => {
        await Promise.race([ended(p.stdin), sleep(OUTPUT_DRAIN_MS)]);
        return closed ? 137 : code;
      }),
      close: () => {
        if (closed) return;
        closed = true;
        sendSignal(p.control, 9);
        void this.killTag(sandbox.leaseId, p.tag);
        p.stdin.destroy();
      },
    };
  }
}

function validSize(size: TerminalSize): boolean {
  return (
    Number.isInteger(size.cols) &&
    Number.isInteger(size.rows) &&
    size.cols > 0 &&
    size.rows > 0 &&
    size.cols <= 1000 &&
    size.rows <= 1000
  );
}
