import type { Duplex, Readable, Writable } from 'node:stream';

/**
 * The port every compute backend implements (ARCHITECTURE.md, port ComputeDriver): crun sandboxes
 * on one machine by default, gVisor and Kubernetes later. Every implementation passes the shared
 * contract suite in test/integration/drivers/compute-driver.contract.ts.
 *
 * Paid time is decided by the lease service, never here; a driver only enforces the deadline it is
 * given, on its own, so that a dead control plane cannot leave free compute running.
 */
export interface ComputeDriver {
  /** Short name for logs and metrics, e.g. 'crun'. */
  readonly id: string;
  /**
   * Optional: names the compute target when every replica sharing the store reaches this driver's
   * sandboxes (LXD: `lxd:<owner>`, one daemon or cluster). Absent: the sandboxes are this machine's
   * own, reachable only through the replica that started them (src/leases/compute-target.ts).
   */
  readonly sharedTarget?: string;
  /** What is left on this host after the sandboxes already running, under the operator's overcommit. */
  capacity(): Promise<DriverCapacity>;
  /**
   * Optional: makes sandboxes of `image` with a writable disk of `diskMib` ahead of the first
   * start (the node calls it for its offers when it starts), so that even the first paid start of
   * a burst takes one made ahead. Returns at once; the work runs behind, off any request's path.
   * Throws AlacarteError `invalid_request` for an unknown image.
   */
  prewarm?(image: string, diskMib: number): void;
  /**
   * Starts a sandbox for a lease and returns once it answers `exec`. Throws AlacarteError
   * `start_failed`, or `invalid_request` for a bad spec. Admission is the caller's: ask capacity().
   */
  start(spec: SandboxSpec, limits: SandboxLimits, deadline: Date): Promise<SandboxHandle>;
  /** Runs a command inside; throws AlacarteError `lease_not_running` when the sandbox is gone. */
  exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult>;
  /**
   * Starts a process inside the sandbox with its stdin, stdout and stderr as streams, for what is too
   * large or too long for exec(): file transfer (a tar or cat streamed through), SSH commands and
   * subsystems. It runs as the sandbox's root, in the sandbox's namespaces and cgroup, so paths and
   * data are interpreted there and never by the host. Output is back-pressured: a consumer that does
   * not read pauses the process. Throws AlacarteError `lease_not_running` or `invalid_request`.
   */
  spawn(sandbox: SandboxRef, request: SpawnRequest): Promise<SandboxProcess>;
  /**
   * OpenSSH's sftp-server running inside the sandbox as its root, the SFTP protocol on its stdin and
   * stdout (for SSH's `sftp` subsystem, and `scp`): the tenant's files are interpreted there, never
   * by the host. Throws AlacarteError `lease_not_running`, or `not_found` when this node has no SFTP.
   */
  sftp(sandbox: SandboxRef): Promise<SandboxProcess>;
  /**
   * A TCP connection to `127.0.0.1:<port>` inside the sandbox (SSH's local port forwarding), bytes
   * both ways, back-pressured; it ends when the port closes its side (at once when nothing listens
   * there) and destroy() cuts it. It counts against the lease's bound of relayed connections.
   * Throws AlacarteError `lease_not_running`, `invalid_request` (port), or `rate_limited` when the
   * lease holds its most connections already.
   */
  connect(sandbox: SandboxRef, port: number): Promise<Duplex>;
  /**
   * Optional, for a shared target (`sharedTarget`): the URL on this host's loopback where this
   * process relays the running sandbox's declared `port`, serving the sandbox's ports first when it
   * does not yet (a sandbox another replica started), so that a port URL works through every
   * replica as soon as the lease runs. Undefined for a port the sandbox did not declare. Throws
   * AlacarteError `lease_not_running` when the sandbox is gone. Without it, the URLs of the
   * handle's `ports` (the replica that started it) are the relays.
   */
  relayPort?(sandbox: SandboxRef, port: number): Promise<string | undefined>;
  /**
   * An interactive shell on a real terminal inside the sandbox, or `command` on that terminal
   * (`ssh -t host -- top`); the session's exit code is the program's. Throws AlacarteError
   * `lease_not_running`, or `invalid_request` for a bad size or command.
   */
  attach(sandbox: SandboxRef, size: TerminalSize, command?: string[]): Promise<AttachSession>;
  /** Moves the deadline (later or earlier): rewrites /run/alacarte/lease.json and the self-enforced end. */
  setDeadline(sandbox: SandboxRef, deadline: Date): Promise<void>;
  /**
   * Whether the sandbox's init still runs, read from the host; cheap (no process spawned). False for
   * an unknown, stopped or ended sandbox.
   */
  isRunning(sandbox: SandboxRef): Promise<boolean>;
  /**
   * Calls `onExit(leaseId)` within about a second after a sandbox's init has ended, whatever ended
   * it: its deadline, a crash, the OOM killer, a kill from the host, stop(). Covers every sandbox
   * this process started or found in list(). A lease id may be reported after stop() too, and a
   * sandbox may already be removed when it is reported: the caller checks its own records. Returns
   * a function that stops this watch. This is how the lease service learns that a sandbox died
   * early, so that the lease ends within seconds instead of at its deadline.
   */
  watch(onExit: (leaseId: SandboxId) => void): () => void;
  /** Ends the sandbox and removes everything it held. Idempotent: stopping a gone sandbox is fine. */
  stop(sandbox: SandboxRef): Promise<void>;
  /**
   * Optional: ends every process of the sandbox now (SIGKILL) without removing what it holds (layers,
   * runtime state), so that a refunded lease uses no compute while its removal, stop(), runs later,
   * off the request path (src/leases/teardown-queue.ts). Resolves once nothing of the sandbox runs:
   * isRunning() is then false and its ports relay nothing. Idempotent; a gone sandbox is fine.
   * Rejects when its processes could not be ended (the caller then waits for stop()). A driver
   * without it is stopped with stop() before the answer.
   */
  halt?(sandbox: SandboxRef): Promise<void>;
  /**
   * Every sandbox this driver owns that is still running, read from the host (not from memory), so a
   * restarted node can reconcile its store. Leftovers of sandboxes that ended on their own are
   * cleaned up on the way.
   */
  list(): Promise<SandboxInfo[]>;
  /** Releases what the driver holds in this process (listeners, warm layers). Sandboxes keep running. */
  close(): Promise<void>;
}

/** A lease id such as `lse_3kT...`: letters, digits, `_` and `-`, at most 64 characters. */
export type SandboxId = string;

export interface SandboxSpec {
  leaseId: SandboxId;
  /** Name of an image the driver knows, e.g. 'busybox'. */
  image: string;
  /** A long-running program started with the sandbox (its output is discarded); none by default. */
  command?: string[];
  env?: Record<string, string>;
  /** TCP ports inside the sandbox to make reachable from the host's loopback. */
  ports?: number[];
}

/** What an offer grants (API.md offers: vcpu, memory_mib, pids, disk_mib, network, bandwidth_mbit). */
export interface SandboxLimits {
  /** CPU time as a number of cores, fractions allowed (0.5 = half a core). */
  vcpu: number;
  memoryMib: number;
  pids: number;
  diskMib: number;
  /**
   * `egress`: outbound internet through a user-mode network, with the host, private and link-local
   * ranges and port 25 refused on the host side (API.md "Images and network in offers"). Absent or
   * `none`: loopback only.
   */
  network?: 'none' | 'egress';
  /** Egress bandwidth cap, megabits per second in each direction; required with `egress`. */
  bandwidthMbit?: number;
}

/** Identifies a sandbox to the driver; a handle, a list() entry or just `{ leaseId }` all do. */
export interface SandboxRef {
  leaseId: SandboxId;
}

export interface SandboxHandle extends SandboxRef {
  deadline: Date;
  /** Sandbox port -> URL on the host's loopback, e.g. 8080 -> 'http://127.0.0.1:40123'. */
  ports: Record<number, string>;
}

export type SandboxInfo = SandboxHandle;

export interface ExecRequest {
  command: string[];
  stdin?: string | Uint8Array;
  /** The command is killed after this long; the result then says `timedOut`. */
  timeoutMs: number;
  /**
   * Aborted when nobody waits for the result any more (the HTTP client went away): the command is
   * then killed at once, as at its timeout (the result says `timedOut`). Not for background ones.
   */
  signal?: AbortSignal;
  /** Cap for stdout and for stderr each; what comes beyond is dropped and `truncated` set. */
  maxOutputBytes: number;
  env?: Record<string, string>;
  /**
   * Start the command detached and return at once: it runs until it exits or the lease ends, its
   * input, output and errors on /dev/null; `timeoutMs` then bounds only the start. The result
   * then has `pid` (empty output) or, when the command could not be started, no `pid` and the
   * reason in `exitCode` (127: not found) and `stderr`.
   */
  background?: boolean;
}

/** A command for spawn(): the same bounds as an exec's command and environment. */
export interface SpawnRequest {
  command: string[];
  env?: Record<string, string>;
}

/** A process started by spawn(). */
export interface SandboxProcess {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /**
   * The exit status (128 + signal number when killed) once the command has exited and everything it
   * wrote before has been read (at the reader's pace: never cut short). A background job it left
   * holding its output does not hold this back: what the job writes from then on is read and
   * dropped (the job never meets SIGPIPE or a full pipe), until it closes its output or the lease ends.
   */
  exited: Promise<number>;
  /** SIGKILLs the process and everything it started (its session and descendants). Idempotent. */
  kill(): void;
  /**
   * The reader went away (an SSH client that disconnected mid-command), as sshd's hangup: SIGHUP to
   * the command's own process only, not to what it started; its input ends, and its output (and its
   * jobs') is read and dropped from then on. Nothing is signalled once the command has exited.
   * Idempotent.
   */
  hangup(): void;
}

export interface ExecResult {
  /** The command's exit status; 128 + signal number when killed (137 after a timeout). */
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  truncated: boolean;
  timedOut: boolean;
  /** With `background`: the started command's pid, as the sandbox numbers it. */
  pid?: number;
}

export interface TerminalSize {
  cols: number;
  rows: number;
}

export interface AttachSession {
  /** Terminal bytes both ways: write keystrokes, read what the terminal shows. */
  stream: Duplex;
  resize(size: TerminalSize): Promise<void>;
  /** Resolves with the shell's exit code when the session ends (shell exited, sandbox gone or close()). */
  exited: Promise<number>;
  close(): void;
}

/** An image renters may ask for, as GET /v1/offers shows it in `image_details` (API.md). */
export interface ImageDetail {
  name: string;
  /** One line, e.g. "Debian 12 with python3, pip, curl, git". */
  description: string;
  /** Size of its root filesystem, MiB. */
  size_mib: number;
}

/** Free resources, after overcommit, and how many sandboxes may still start. */
export interface DriverCapacity {
  vcpu: number;
  memoryMib: number;
  diskMib: number;
  sandboxes: number;
  /**
   * False when this host cannot start `egress` sandboxes (no user-mode network or firewall): egress
   * offers then fit nowhere, so they are refused before payment instead of refunded after it.
   * Absent: it can.
   */
  egress?: boolean;
  /**
   * The leases whose sandboxes are counted above already (started, or being started): the lease
   * service's reservation for one of them is not subtracted a second time (a burst near the limit
   * would be refused room it has). Absent: none known, every reservation counts.
   */
  leases?: ReadonlySet<string>;
}

/**
 * Bounds every driver applies before touching the host; outside data must not pick paths or ids.
 * They live with the lease request's schema (core/lease-request.ts), which the HTTP layer applies
 * before payment, so a driver never refuses what was paid for.
 */
export { IMAGE_NAME_PATTERN, SANDBOX_ID_PATTERN } from '../core/lease-request.js';

/**
 * An exec's end by time: runs `onTimeout` once, after `timeoutMs` or as soon as `signal` aborts
 * (ExecRequest.signal), whichever comes first. Returns the function that cancels it (call it when
 * the command has ended).
 */
export function execDeadline(
  timeoutMs: number,
  signal: AbortSignal | undefined,
  onTimeout: () => void,
): () => void {
  let fired = false;
  const fire = () => {
    if (fired) return;
    fired = true;
    cancel();
    onTimeout();
  };
  const timer = setTimeout(fire, timeoutMs);
  const cancel = () => {
    // Also when the signal had aborted already: its queued call then does nothing.
    fired = true;
    clearTimeout(timer);
    signal?.removeEventListener('abort', fire);
  };
  if (signal?.aborted) queueMicrotask(fire);
  else signal?.addEventListener('abort', fire, { once: true });
  return cancel;
}
