import type { ServerChannel, Session } from 'ssh2';
import { AlacarteError } from '../core/errors.js';
import { commandSchema, ENV_NAME_PATTERN } from '../core/lease-request.js';
import type {
  AttachSession,
  ComputeDriver,
  SandboxProcess,
  TerminalSize,
} from '../drivers/compute-driver.js';
import type { Logger } from '../log.js';

/** What an SSH session may use of the driver. */
export type SessionDriver = Pick<ComputeDriver, 'spawn' | 'attach' | 'sftp'>;

/** Environment variables a client may send (OpenSSH sends LANG and LC_* by default): bounded. */
const MAX_ENV_VARS = 32;
const MAX_ENV_VALUE_BYTES = 1024;

/** The running part of a session: what ends it from outside (lease over, connection gone). */
interface Running {
  channel: ServerChannel;
  /** Ends what runs and everything it started (the lease has ended). */
  kill(): void;
  /**
   * The client went away: a terminal hangs up (the kernel SIGHUPs its session), a command's own
   * process is SIGHUPed while the jobs it started keep running (SandboxProcess.hangup), sftp ends.
   */
  hangup(): void;
  /** What ran has exited: nothing is left to hang up. */
  done: boolean;
  /** On a terminal (attach) rather than plain pipes. */
  terminal: boolean;
  /** Whether lines for the user may be written (not into an sftp stream). */
  tellable: boolean;
}

/**
 * One SSH session channel of a logged-in lease (RFC 4254 section 6): an optional PTY request and
 * environment, then one of a shell (on a real terminal through the driver's attach() when a PTY
 * was asked for, a plain `sh` through spawn() otherwise), a command (`sh -c "<command>"`, on a
 * terminal with a PTY, else through spawn() with its stdout and stderr apart; the exit status sent
 * back) or the `sftp` subsystem (OpenSSH's
 * sftp-server inside the sandbox, driver.sftp()). Everything runs inside the sandbox as its root;
 * bytes go both ways back-pressured (pipes), never gathered in this process.
 *
 * As with OpenSSH's sshd, a command's exit ends its channel (exit status, close) as soon as what it
 * wrote has reached the client, whatever jobs it left running (`nohup server &`): they keep running,
 * their later output dropped (spawn()). A client that goes away before the command exits hangs it
 * up: SIGHUP to the command's own process, never a kill of what it started (README, SSH).
 */
export class SshSession {
  private pty: TerminalSize | undefined;
  private terminal: AttachSession | undefined;
  private readonly env: Record<string, string> = {};
  private running: Running | undefined;
  private starting = false;
  private closed = false;

  constructor(
    session: Session,
    private readonly leaseId: string,
    private readonly driver: SessionDriver,
    private readonly log: Logger,
    /** Called once when the session's channel has closed, whoever closed it. */
    onClose: () => void,
    /** Whether the lease has ended: asked when what ran ends, to tell the user why. */
    private readonly leaseEnded: () => Promise<boolean> = async () => false,
  ) {
    session.on('pty', (accept, reject, info) => {
      const size = { cols: info.cols || 80, rows: info.rows || 24 };
      if (!validSize(size) || this.running) return reject?.();
      this.pty = size;
      accept?.();
    });
    session.on('window-change', (accept, reject, info) => {
      const size = { cols: info.cols, rows: info.rows };
      if (!validSize(size)) return reject?.();
      this.pty = size;
      this.terminal?.resize(size).catch(() => undefined);
      accept?.();
    });
    session.on('env', (accept, reject, info) => {
      const ok =
        ENV_NAME_PATTERN.test(info.key) &&
        info.key !== '__proto__' &&
        Buffer.byteLength(info.val) <= MAX_ENV_VALUE_BYTES &&
        !info.val.includes('\0') &&
        (info.key in this.env || Object.keys(this.env).length < MAX_ENV_VARS);
      if (!ok) return reject?.();
      this.env[info.key] = info.val;
      accept?.();
    });
    session.on('shell', (accept, reject) => {
      const pty = this.pty;
      void this.start(accept, reject, () =>
        pty
          ? this.driver.attach({ leaseId }, pty)
          : this.driver.spawn({ leaseId }, { command: ['/bin/sh'], env: this.env }),
      );
    });
    session.on('exec', (accept, reject, info) => {
      // The tenant's own command, run by a shell inside its own sandbox, like sshd runs it.
      const command = ['/bin/sh', '-c', info.command];
      if (!commandSchema.safeParse(command).success) return reject();
      // With a PTY (`ssh -t`), on a terminal like a shell; otherwise with plain pipes.
      const pty = this.pty;
      void this.start(accept, reject, () =>
        pty
          ? this.driver.attach({ leaseId }, pty, onTerminal(info.command))
          : this.driver.spawn({ leaseId }, { command, env: this.env }),
      );
    });
    session.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp') return reject();
      void this.start(accept, reject, () => this.driver.sftp({ leaseId }), { stderr: false });
    });
    session.once('close', () => {
      this.close();
      onClose();
    });
  }

  /** Tells the user why (on the session's stderr) and ends the session: its lease has ended. */
  end(message: string): void {
    const running = this.running;
    if (!running) return;
    try {
      running.channel.stderr.write(`\r\n${message}\r\n`);
      running.channel.exit(255);
      running.channel.end();
    } catch {
      // The channel is gone already.
    }
    running.kill();
  }

  /**
   * A line for the user (the lease is about to end): on the terminal of a shell, on stderr of a
   * command; never into an sftp stream, whose stdout is a protocol.
   */
  notify(text: string): void {
    const running = this.running;
    if (!running?.tellable) return;
    try {
      if (running.terminal) running.channel.write(text);
      else running.channel.stderr.write(text);
    } catch {
      // The channel is gone already.
    }
  }

  private close(): void {
    this.closed = true;
    this.hangUp();
  }

  /** The client went away (see Running.hangup): once, and nothing once what ran has exited. */
  hangUp(): void {
    const running = this.running;
    if (!running || running.done) return;
    // Told by the channel's close, the session's and the connection's: one hangup.
    running.done = true;
    running.hangup();
  }

  /**
   * Accepts the request at once (ssh2 refuses a late acceptance once the client has sent its end
   * of input, which OpenSSH does right after a command with nothing to send), then starts what was
   * asked for; should that fail, the channel says why on stderr and exits 1, as sshd does.
   */
  private async start(
    accept: () => ServerChannel,
    reject: () => void,
    begin: () => Promise<SandboxProcess | AttachSession>,
    options: { stderr?: boolean } = {},
  ): Promise<void> {
    if (this.running || this.starting) return reject();
    this.starting = true;
    const channel = accept();
    channel.on('error', () => undefined);
    let started: SandboxProcess | AttachSession;
    try {
      started = await begin();
    } catch (err) {
      const code = err instanceof AlacarteError ? err.code : 'error';
      this.log.debug({ lease: this.leaseId, code }, 'ssh: request failed');
      const why =
        code === 'lease_not_running'
          ? 'the lease is not running'
          : code === 'lease_elsewhere'
            ? 'this lease runs on another server of this node; connect through the address that created it (the same one as its HTTP requests)'
            : 'could not start';
      channel.stderr.write(`alacarte: ${why}\r\n`);
      finish(channel, 1);
      return;
    } finally {
      this.starting = false;
    }
    const stop = 'stream' in started ? () => started.close() : () => started.kill();
    // sftp-server is ours and starts nothing: ended outright.
    const hangup = 'stream' in started || options.stderr === false ? stop : () => started.hangup();
    // The client went away while it started.
    if (this.closed) return hangup();
    this.running = {
      channel,
      kill: stop,
      hangup,
      done: false,
      terminal: 'stream' in started,
      tellable: options.stderr !== false,
    };
    if ('stream' in started) this.bindTerminal(channel, started);
    else this.bindProcess(channel, started, options.stderr !== false);
  }

  /**
   * Sends the exit status and ends the channel; when the lease ended (the sandbox went with it,
   * killing what ran), the user reads why first.
   */
  private async finish(channel: ServerChannel, code: number): Promise<void> {
    const ended = await this.leaseEnded().catch(() => false);
    if (ended && !this.closed) {
      try {
        channel.stderr.write(`\r\n${leaseEndedLine(this.leaseId)}\r\n`);
      } catch {
        // The client went first.
      }
    }
    finish(channel, code);
  }

  private bindTerminal(channel: ServerChannel, terminal: AttachSession): void {
    this.terminal = terminal;
    // A terminal has no end of input (sshd does not pass a client's EOF to a pty either): ending
    // the relay's stdin would end the session early and garble what the program still prints.
    channel.pipe(terminal.stream, { end: false });
    terminal.stream.pipe(channel, { end: false });
    terminal.stream.on('error', () => undefined);
    channel.once('close', () => terminal.close());
    void terminal.exited.then((code) => {
      if (this.running) this.running.done = true;
      return this.finish(channel, code);
    });
  }

  private bindProcess(channel: ServerChannel, proc: SandboxProcess, stderr: boolean): void {
    // The client's end of input (EOF) ends the process's stdin, as sshd does.
    channel.pipe(proc.stdin);
    proc.stdout.pipe(channel, { end: false });
    if (stderr) proc.stderr.pipe(channel.stderr, { end: false });
    else proc.stderr.resume();
    channel.once('close', () => {
      proc.stdout.unpipe(channel);
      proc.stderr.unpipe(channel.stderr);
      // As sshd: what the command left running is not killed when its channel closes; a command
      // still running when the client went away is hung up (sftp-server, ours, ended).
      this.hangUp();
    });
    void proc.exited.then((code) => {
      if (this.running) this.running.done = true;
      return this.finish(channel, code);
    });
  }
}

/**
 * A command for a terminal (`ssh -t host -- CMD`). It starts a tenth of a second late: crun's
 * `exec -t` takes whatever a program prints before crun relays the terminal for an error of its
 * own, and shows it wrapped in a red, time-stamped log line (a shell prints its prompt later than
 * that; a quick `tty` does not).
 */
function onTerminal(command: string): string[] {
  return ['/bin/sh', '-c', 'sleep 0.1; exec /bin/sh -c "$1"', 'sh', command];
}

/** The lines a session shows when its lease ends under it. */
export function leaseEndedLine(leaseId: string): string {
  return `alacarte: lease ${leaseId} has ended; closing the connection.`;
}

function finish(channel: ServerChannel, code: number): void {
  try {
    channel.exit(code);
    channel.end();
  } catch {
    // The client went first.
  }
}

function validSize(size: TerminalSize): boolean {
  return (
    Number.isInteger(size.cols) &&
    Number.isInteger(size.rows) &&
    size.cols >= 1 &&
    size.rows >= 1 &&
    size.cols <= 1000 &&
    size.rows <= 1000
  );
}
