import { type ChildProcess, spawn } from 'node:child_process';

/**
 * A host program that serves the node's requests for as long as the node runs, one line each way
 * on its stdin and stdout (the spawner shell, spawner.ts; the host file helper, host-fs.ts). Started
 * on first use, and again on the use after it died.
 *
 * - Its own process group and session (`detached`): a signal meant for the node, Ctrl-C in the
 *   operator's terminal (SIGINT to the whole foreground group) or `kill -TERM -<pgid>`, must not
 *   also kill it and the work it does half-way (a sandbox being made ahead was left mounted, its
 *   making cut short under the node's feet); the node's own handler then stops in order. It still
 *   ends with the node: its stdin closes.
 * - It never keeps the node alive on its own: unref'd, and its output held (hold()) only while
 *   requests are under way.
 * - `failed(why)` is told once per process when it can no longer answer: an error, its exit, or the
 *   end of its output. The last is said too since the exit event may never come: the child is
 *   unref'd, so once its output pipe has closed nothing may keep the event loop alive until the
 *   exit is reaped, and the node would then be left with requests pending, a shutdown cut short
 *   with status 0 (the program killed along with the node, as systemd does to every process of a
 *   service). The owner fails what it has pending; the next use starts a new process.
 */
export class StandingChild {
  private child: ChildProcess | undefined;

  /**
   * `what` names it in failures ("the spawner shell"); `file` and `args` start it (stderr
   * ignored); `onText` gets its output as it comes (UTF-8 text, any chunking).
   */
  constructor(
    private readonly what: string,
    private readonly file: string,
    private readonly args: readonly string[],
    private readonly onText: (text: string) => void,
    private readonly failed: (why: string) => void,
  ) {}

  /** Writes `text` to its stdin, starting it first when none runs. */
  write(text: string): void {
    this.ensure().stdin?.write(text);
  }

  /** Keeps the node alive while requests are under way (until release()). */
  hold(): void {
    refOf(this.ensure().stdout)?.ref();
  }

  /** Lets the node exit with it idle. */
  release(): void {
    if (this.child) refOf(this.child.stdout)?.unref();
  }

  /** Closes its stdin (it ends once the work under way is done) and forgets it; no failure is told. */
  end(): void {
    this.child?.stdin?.end();
    this.child = undefined;
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn(this.file, [...this.args], { stdio: ['pipe', 'pipe', 'ignore'], detached: true });
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (text: string) => this.onText(text));
    const failed = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.failed(why);
    };
    child.on('error', (e) => failed(`${this.what} failed: ${String(e)}`));
    child.on('exit', (code) => failed(`${this.what} exited (${code})`));
    child.stdout?.on('end', () => failed(`${this.what} closed its output`));
    child.stdin?.on('error', () => {});
    child.unref();
    refOf(child.stdin)?.unref();
    refOf(child.stdout)?.unref();
    this.child = child;
    return child;
  }
}

/** The ref()/unref() of a child's pipe (a net.Socket at run time; typed as a plain stream). */
function refOf(stream: unknown): { ref: () => void; unref: () => void } | undefined {
  const s = stream as { ref?: () => void; unref?: () => void } | null;
  return s?.ref && s.unref ? (s as { ref: () => void; unref: () => void }) : undefined;
}
