import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchownSync,
  constants as fs,
  fstatSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { type ExecRequest, type ExecResult, execDeadline } from '../compute-driver.js';
import { AnswerLines } from './answer-lines.js';
import { FifoOutputs } from './exec-output.js';
import type { FifoStock } from './fifo-stock.js';
import { fifoWaker } from './fifo-waker.js';
import { DEFAULT_PATH, IN_SANDBOX } from './oci-spec.js';
import type { OutputDrain } from './output-drain.js';
import { cgroupPids, killExecTree } from './process-tree.js';
import { PROGRAM_LOOKUP, PROGRAM_LOOKUP_VARS } from './program-lookup.js';

/**
 * The exec agent: a process inside every sandbox (started by its init, init-script.ts) that runs
 * the node's non-interactive execs, instead of a `crun exec` per call. Two of them speak the same
 * protocol: the native agent (native/exec-agent.c, a static program copied into the host's
 * library directory by host-setup.ts, and linked into the native init, which forks it: one fork,
 * setsid and execve per exec), and, when the host
 * has no build of it, a busybox shell (agentScript: two forks and a `busybox setsid` per exec,
 * about twice the sandbox's CPU). Each sandbox has both request FIFOs; init starts one agent and
 * the node writes to the FIFO that has a reader. `crun exec` forks and
 * execs the runtime, which reads the container's state and config, joins its namespaces and
 * cgroup and sets up seccomp before the command starts: most of an exec's time under load
 * (bench/RESULTS.md). The agent is already in all of them, having been started by init: its
 * children get the same uid (root inside), capabilities, seccomp filter, namespaces and cgroup as
 * `crun exec` would give them, and the OCI config's no_new_privs, RLIMIT_NOFILE and OOM score
 * (which `crun exec` leaves out); under the shell agent only, SIGINT and SIGQUIT are ignored,
 * unlike with `crun exec` (a background job of a shell without job control; busybox has no way to
 * reset an ignored signal before exec). The environment is the one given
 * (the lease's and the request's), the working directory the image's, and each exec gets a session
 * of its own (setsid), so that a timeout can find all it started.
 *
 * Protocol, all in the sandbox's run directory (host `<sandbox>/run`, `/run/alacarte` inside, a
 * read-only bind there, so that nothing inside can create, replace or link anything in it):
 * - the node writes the exec's request to `x/<id>` (nativeRequest's fields, or execScript's shell
 *   script; its stdin to `x/<id>.in`) and moves two fresh FIFOs to `x/<id>.out` and `x/<id>.err`,
 *   opens their read ends, then writes `<id>\n` (one write, atomic) into the FIFO the agent reads
 *   (`exec-in` for the native one, `agent-in` for the shell);
 * - the agent runs it in a child of its own (the shell: sources `x/<id>` in a background subshell)
 *   and writes `<id> p <pid>\n` (its pid as the sandbox numbers it) then, once it has exited,
 *   `<id> <status>\n` (128 + n for signal n) into the FIFO `agent-out`, which the node reads.
 *
 * Trust: the tenant is root inside and may kill or replace the agent, or write into both FIFOs.
 * That can only hurt its own execs: nothing the tenant writes is interpreted by anything
 * privileged. The node only ever opens paths it made itself in the run directory (with
 * O_NOFOLLOW and a FIFO check besides), writes them without blocking, reads bytes up to the
 * request's cap from the output FIFOs, and from `agent-out` lines of a few digits up to a budget
 * (past it, the agent is no longer used for this sandbox); a pid it is told is only used to pick
 * processes among the sandbox's own cgroup when a timeout kills the exec. Every exec ends at its
 * timeout whatever the agent does. When no agent reads `agent-in` (it was killed, the sandbox was
 * made by an older node), or it misbehaved, the caller falls back to `crun exec`.
 */

/** The shell agent's request FIFO, in the sandbox's run directory. */
export const AGENT_REQUESTS = 'agent-in';
/**
 * The native agent's request FIFO (native/exec-agent.c), beside the shell agent's: init starts
 * the native one when the host has it, and the node writes to whichever reads (a sandbox made
 * before it existed has only `agent-in`).
 */
export const NATIVE_REQUESTS = 'exec-in';
/** The native agent's program in the host's library directory (built from native/exec-agent.c). */
export const NATIVE_AGENT_FILE = 'exec-agent';
/** The agent's answer FIFO, in the sandbox's run directory. */
export const AGENT_ANSWERS = 'agent-out';
/** Where the node puts each exec's script, input and output FIFOs, in the sandbox's run directory. */
export const EXEC_DIR = 'x';
/** The agent's script in the host's library directory (shown at /run/alacarte/bin). */
export const AGENT_FILE = 'agent.sh';

/** After a timeout, how long the agent may take to report the killed command's end before the exec returns anyway. */
const KILL_GRACE_MS = 1000;

/** Bytes of answers the node reads per exec it sent (a few dozen are needed); past it the agent is dropped. */
const ANSWER_BYTES_PER_EXEC = 4096;
const MAX_ANSWER_BUDGET = 1 << 20;

/** Exit status the node reports when the agent died with the exec (its command was most likely killed too). */
const LOST_STATUS = 137;

/**
 * The agent, run by the host's busybox as a child of init before the lease's command exists. fd 3
 * and 4 (the two FIFOs, opened read-write so that they never see end-of-file or SIGPIPE) are closed
 * for every exec. A trapped SIGCHLD cuts the blocking `read` short so that finished watchers are
 * reaped (`jobs`) at once and do not hold the sandbox's pids limit. Ids are checked to be hex, so a
 * line written by anything else cannot name another path.
 */
export function agentScript(): string {
  const R = IN_SANDBOX.runDir;
  // No host program runs before the command's own: the exec's script is sourced by a forked
  // subshell, which ends by exec'ing setsid and through it the command. What runs here is charged
  // to the sandbox's CPU quota (a tiny offer has 1 ms per 100 ms), where `crun exec` does most of
  // its work outside it.
  return `# alacarte exec agent (exec-agent.ts)
exec 3<>${R}/${AGENT_REQUESTS} 4<>${R}/${AGENT_ANSWERS} || exit 0
trap : CHLD
while :; do
  id=
  read -r id <&3
  case $id in ''|*[!0-9a-f]*) continue ;; esac
  ( ( . ${R}/${EXEC_DIR}/$id ) 4>&- & echo "$id p $!" >&4; wait $!; echo "$id $?" >&4 ) 3<&- &
  jobs >/dev/null
done
`;
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * The script for one exec, sourced by a subshell of the agent: standard streams onto the exec's
 * files, the working directory, the command's path, then only the given environment, and (one
 * process all along, so the pid the agent reports is the command's) a new session through busybox
 * setsid, which execs the command.
 *
 * The path is looked up here, in the given PATH, as `crun exec` does (program-lookup.ts): busybox
 * (its shell, and its applets' own lookups) would otherwise run its own applet for a name it knows
 * (`ls`, `sh`) instead of the image's program. Not found: 127, as a shell says (`crun exec` says
 * 255); not an executable file: 126. The looked-up file is kept as a positional parameter, which no
 * environment entry can change. The environment: the agent's own exported variables (init's fixed
 * PATH and HOME, and PWD, OLDPWD, SHLVL the shell keeps) and the lookup's are unset after the `cd`,
 * then the given ones exported. Every word is single-quoted.
 */
export function execScript(
  id: string,
  env: readonly string[],
  cwd: string | undefined,
  command: readonly string[],
  hasStdin: boolean,
): string {
  const x = `${IN_SANDBOX.runDir}/${EXEC_DIR}/${id}`;
  const B = IN_SANDBOX.busybox;
  const path = env.findLast((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH.slice(5);
  const [program = '', ...args] = command;
  const lines = [`exec <${hasStdin ? `${x}.in` : '/dev/null'} >${x}.out 2>${x}.err`];
  if (cwd !== undefined) lines.push(`cd -- ${quote(cwd)} || exit 126`);
  lines.push(
    'set -f',
    `_alacarte_c=${quote(program)} _alacarte_p=${quote(path)}`,
    PROGRAM_LOOKUP,
    'set -- "$_alacarte_f"',
    `unset PATH HOME PWD OLDPWD SHLVL ${PROGRAM_LOOKUP_VARS}`,
  );
  if (env.length > 0) lines.push(`export ${env.map(quote).join(' ')}`);
  lines.push(`exec ${B} setsid -- "$1" ${args.map(quote).join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The request of one exec for the native agent (native/exec-agent.c: `run_exec`): NUL-terminated
 * fields `1` (the format), stdin (`0` or `1`), the working directory (empty: the image's), the PATH
 * the program is looked up in, the argument count and the arguments (the program first, as
 * given), the environment's count and its NAME=value entries. The agent does what execScript's
 * shell does: the same lookup, the same 127 and 126, exactly the given environment.
 */
export function nativeRequest(
  env: readonly string[],
  cwd: string | undefined,
  command: readonly string[],
  hasStdin: boolean,
): Buffer {
  const path = env.findLast((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH.slice(5);
  const fields = [
    '1',
    hasStdin ? '1' : '0',
    cwd ?? '',
    path,
    String(command.length),
    ...command,
    String(env.length),
    ...env,
  ];
  return Buffer.from(`${fields.join('\0')}\0`);
}

/** What an agent exec needs besides the request (the same as `crun exec`'s, exec.ts). */
export interface AgentExecTarget {
  /** The whole environment, NAME=value. */
  env: string[];
  cwd?: string;
  /** The sandbox's cgroup.procs: a timeout kills the exec's processes among these. */
  procsFile: string;
  drain?: OutputDrain;
}

interface Pending {
  onPid: (nsPid: number) => void;
  onExit: (status: number) => void;
  onLost: () => void;
}

/**
 * The node's side of one sandbox's agent. exec() answers undefined, having started nothing, when
 * the agent cannot take the call: the caller then uses `crun exec`.
 */
export class ExecAgent {
  private answers: Socket | undefined;
  /** Answer lines are a few dozen bytes: a longer unfinished one is not one. */
  private readonly lines = new AnswerLines(64);
  private budget = 0;
  /** The agent misbehaved: not used again for this sandbox. */
  private dropped = false;
  private readonly pending = new Map<string, Pending>();

  /**
   * `runDir`: the sandbox's run directory on the host (not through a link); `fifos`: a stock of
   * FIFOs on the same filesystem, owned by root inside; `owner`: root inside (host ids).
   */
  constructor(
    private readonly runDir: string,
    private readonly fifos: FifoStock,
    private readonly owner: { uid: number; gid: number },
  ) {}

  /**
   * Whether the agent can run this call at all: a command, and names the shell can export (an
   * image's environment is not checked as a request's is).
   */
  static canRun(command: readonly string[], env: readonly string[]): boolean {
    // No NUL (the request refuses it; the native agent's fields end there).
    return (
      command.length > 0 &&
      env.every((e) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(e) && !e.includes('\0')) &&
      command.every((c) => !c.includes('\0'))
    );
  }

  /** Runs `request` through the agent; undefined (nothing started) when it cannot. */
  async exec(target: AgentExecTarget, request: ExecRequest): Promise<ExecResult | undefined> {
    if (this.dropped || !ExecAgent.canRun(request.command, target.env)) return undefined;
    // Non-blocking: ENXIO at once when no agent holds the read end. The native agent's first.
    let native = true;
    let requests = openFifo(join(this.runDir, NATIVE_REQUESTS), fs.O_WRONLY);
    if (requests === undefined) {
      native = false;
      requests = openFifo(join(this.runDir, AGENT_REQUESTS), fs.O_WRONLY);
    }
    if (requests === undefined) return undefined;
    const id = randomBytes(6).toString('hex');
    const base = join(this.runDir, EXEC_DIR, id);
    const hasStdin = request.stdin !== undefined && request.stdin.length > 0;
    // What this exec put in the run directory, removed at its end (one unlink each, none for a
    // path it never made).
    const made: string[] = [];
    const cleanUp = () => {
      for (const p of made.splice(0)) unlinkQuietly(p);
    };
    let outputs: FifoOutputs | undefined;
    try {
      const [out, err] = (await this.fifos.take(2)) as [string, string];
      renameSync(out, `${base}.out`);
      made.push(`${base}.out`);
      renameSync(err, `${base}.err`);
      made.push(`${base}.err`);
      if (hasStdin && request.stdin !== undefined) {
        made.push(`${base}.in`);
        this.writeOwned(`${base}.in`, request.stdin);
      }
      made.push(base);
      this.writeOwned(
        base,
        native
          ? nativeRequest(target.env, target.cwd, request.command, hasStdin)
          : execScript(id, target.env, target.cwd, request.command, hasStdin),
      );
      outputs = new FifoOutputs(`${base}.out`, `${base}.err`, request.maxOutputBytes);
    } catch {
      outputs?.destroy();
      closeSync(requests);
      cleanUp();
      return undefined;
    }
    let status: { code: number; timedOut: boolean } | undefined;
    try {
      status = await this.run(id, requests, target, request);
    } finally {
      cleanUp();
    }
    if (status === undefined) {
      outputs.destroy();
      return undefined;
    }
    return { exitCode: status.code, ...(await outputs.finish(target.drain)), timedOut: status.timedOut };
  }

  /**
   * The sandbox is going away: stops reading answers, and the execs under way end as lost (their
   * processes are being killed; each returns once its output has ended) rather than at their
   * timeout, which may be an hour away.
   */
  close(): void {
    this.dropped = true;
    for (const p of [...this.pending.values()]) p.onLost();
    this.answers?.destroy();
    this.answers = undefined;
  }

  /**
   * Sends the request and waits for the exec's end or timeout; undefined (nothing started) if it
   * could not be sent.
   */
  private run(
    id: string,
    requests: number,
    target: AgentExecTarget,
    request: ExecRequest,
  ): Promise<{ code: number; timedOut: boolean } | undefined> {
    // Here, with no await before the exec is pending: the last exec to end closes the answer FIFO.
    if (!this.listen()) {
      closeSync(requests);
      return Promise.resolve(undefined);
    }
    let settle!: (code: number) => void;
    let unsent!: () => void;
    let timedOut = false;
    let nsPid: number | undefined;
    let grace: NodeJS.Timeout | undefined;
    const kill = () => {
      const pid = nsPid === undefined ? undefined : hostPid(nsPid, target.procsFile);
      if (pid !== undefined) killExecTree(pid, target.procsFile);
    };
    const done = new Promise<{ code: number; timedOut: boolean } | undefined>((resolve) => {
      settle = (code) => {
        if (!this.pending.delete(id)) return;
        cancel();
        clearTimeout(grace);
        if (this.pending.size === 0) this.quiet();
        resolve({ code, timedOut });
      };
      unsent = () => {
        if (!this.pending.delete(id)) return;
        cancel();
        if (this.pending.size === 0) this.quiet();
        resolve(undefined);
      };
    });
    const cancel = execDeadline(request.timeoutMs, request.signal, () => {
      timedOut = true;
      kill();
      // If the agent never reports (it died, or was replaced), do not wait for it.
      grace = setTimeout(() => {
        // The pid may have come only after the first sweep.
        kill();
        settle(LOST_STATUS);
      }, KILL_GRACE_MS);
    });
    this.pending.set(id, {
      onPid: (pid) => {
        // init (1) holds the sandbox's deadline: never an exec's to kill.
        if (pid > 1) nsPid ??= pid;
        if (timedOut) kill();
      },
      onExit: (code) => {
        if (timedOut) kill();
        settle(code);
      },
      onLost: () => settle(LOST_STATUS),
    });
    this.budget = Math.min(MAX_ANSWER_BUDGET, this.budget + ANSWER_BYTES_PER_EXEC);
    // The write wakes the agent, which the kernel may run at once ahead of the writer: not from the
    // node's thread (fifo-waker.ts). One write of a few bytes: atomic. Not all written (EAGAIN):
    // the agent does not read its requests.
    fifoWaker().write(requests, `${id}\n`, (written) => {
      if (!written) unsent();
    });
    return done;
  }

  /**
   * No exec under way: the answer FIFO is closed, so that an idle lease holds no descriptor of the
   * node (a thousand idle leases); a late answer stays in the pipe and is skipped when it is read.
   */
  private quiet(): void {
    const socket = this.answers;
    this.answers = undefined;
    this.lines.clear();
    socket?.destroy();
  }

  /** Opens the answer FIFO while execs are under way; false when it cannot be. */
  private listen(): boolean {
    if (this.answers) return true;
    const fd = openFifo(join(this.runDir, AGENT_ANSWERS), fs.O_RDONLY);
    if (fd === undefined) return false;
    const socket = new Socket({ fd, readable: true, writable: false });
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => this.onAnswers(socket, text));
    socket.on('error', () => {});
    // Every writer gone: the agent and all its watchers died (`kill -9 -1` inside, say), so no
    // answer can come for the execs under way.
    socket.on('close', () => {
      if (this.answers !== socket) return;
      this.answers = undefined;
      this.lines.clear();
      for (const p of [...this.pending.values()]) p.onLost();
    });
    this.answers = socket;
    return true;
  }

  private onAnswers(socket: Socket, text: string): void {
    this.budget -= text.length;
    if (this.budget < 0) {
      // Far more than the execs sent could answer: not our agent. Its execs end at their timeouts.
      this.dropped = true;
      if (this.answers === socket) this.answers = undefined;
      socket.destroy();
      return;
    }
    this.lines.feed(text, (line) => {
      const m = /^([0-9a-f]{12}) (?:p ([0-9]{1,9})|([0-9]{1,3}))$/.exec(line);
      const call = m ? this.pending.get(m[1] as string) : undefined;
      if (!m || !call) return;
      if (m[2] !== undefined) call.onPid(Number(m[2]));
      else call.onExit(Number(m[3]));
    });
  }

  /** Writes a file of the exec (new, never through a link), readable by root inside only. */
  private writeOwned(path: string, content: string | Uint8Array): void {
    const fd = openSync(path, fs.O_WRONLY | fs.O_CREAT | fs.O_EXCL | fs.O_NOFOLLOW, 0o600);
    try {
      fchownSync(fd, this.owner.uid, this.owner.gid);
      const data = typeof content === 'string' ? Buffer.from(content) : content;
      let at = 0;
      while (at < data.length) at += writeSync(fd, data, at, data.length - at);
    } finally {
      closeSync(fd);
    }
  }
}

/** Removes a file of an exec; one gone already (or never made) is fine. */
function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone
  }
}

/** Opens a FIFO the node made, without blocking and never through a link; undefined if that fails. */
function openFifo(path: string, mode: number): number | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, mode | fs.O_NONBLOCK | fs.O_NOFOLLOW);
    if (fstatSync(fd).isFIFO()) return fd;
  } catch {
    // absent, or (ENXIO) no agent reads it
  }
  if (fd !== undefined) closeSync(fd);
  return undefined;
}

/**
 * The host pid of the sandbox's process that the sandbox numbers `nsPid`, found among its cgroup's
 * processes by the last field of their /proc status `NSpid` line; undefined if none.
 */
export function hostPid(nsPid: number, procsFile: string): number | undefined {
  for (const pid of cgroupPids(procsFile)) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/status`, 'latin1');
    } catch {
      continue;
    }
    const line = /^NSpid:\s+(.*)$/m.exec(status)?.[1];
    const fields = line?.trim().split(/\s+/) ?? [];
    if (fields.length >= 2 && Number(fields[fields.length - 1]) === nsPid) return pid;
  }
  return undefined;
}
