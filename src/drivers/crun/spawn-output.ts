import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { OutputDrain } from './output-drain.js';

/**
 * The most one read of a runtime's pipe returns: libuv reads a child's pipe (a Unix stream socket)
 * 64 KiB at a time. A read that returns less found the socket empty.
 */
const READ_BYTES = 64 * 1024;

/** Quiet for this long after the command's exit, with nothing unread: nothing of it is left. */
const QUIET_AFTER_EXIT_MS = 150;

/**
 * The most a runtime's output socket may hold, all queued before the reader: what the writer may set
 * (SO_SNDBUF, up to twice net.core.wmem_max), at least 1 MiB. Read once, lazily.
 */
let maxQueued: number | undefined;
function queuedBound(): number {
  if (maxQueued === undefined) {
    let wmemMax = 0;
    try {
      wmemMax = Number.parseInt(readFileSync('/proc/sys/net/core/wmem_max', 'utf8'), 10) || 0;
    } catch {
      // Not Linux, or no /proc: the floor.
    }
    maxQueued = Math.max(1 << 20, 2 * wmemMax);
  }
  return maxQueued;
}

/**
 * One output of a spawned command (its stdout or stderr, a `crun exec` pipe the node holds) relayed
 * to the consumer at the consumer's pace (`stream`), until everything the command wrote before it
 * exited has been passed on; then `stream` ends and the pipe is handed to the lease's OutputDrain
 * (read and dropped, so that a background job the command left holding it keeps running, never
 * meeting SIGPIPE or a full pipe), or closed without one.
 *
 * After commandExited(), the command's own bytes are all through once:
 * - the pipe ended (nothing was left holding it);
 * - a read begun after the exit came back short (the socket was empty then: a stream socket returns
 *   all it holds, up to the read's size, and the command's bytes were queued first);
 * - more than the socket can hold was read after the exit (a job writing without pause);
 * - or it was quiet for QUIET_AFTER_EXIT_MS with nothing unread and the consumer not behind.
 * Bytes a job wrote before that may reach the consumer too, as with LXD's relay (RELAYED_EXEC_SCRIPT).
 */
export class CommandOutput {
  /** What the consumer reads. */
  readonly stream: Readable;
  /** Resolves once `stream` has ended (read to its end) or was destroyed. */
  readonly done: Promise<void>;
  private exited = false;
  /** Bytes read before the exit, still in the source's buffer when it came: the command's. */
  private before = 0;
  private after = 0;
  private heard = false;
  /** Paused because the consumer is behind (not because nothing comes). */
  private held = false;
  private released = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly onData = (chunk: Buffer) => this.relay(chunk);

  constructor(
    private readonly source: Readable,
    private readonly drain: OutputDrain | undefined,
  ) {
    this.stream = new Readable({
      read: () => {
        this.held = false;
        if (!this.released) source.resume();
      },
      destroy: (err, callback) => {
        this.release();
        callback(err);
      },
    });
    this.done = new Promise((resolve) => {
      this.stream.once('end', resolve).once('close', resolve);
    });
    source.on('data', this.onData);
    source.once('end', () => this.release());
    source.on('error', () => this.release());
  }

  /** The command has exited: from now on, ends the relay once its bytes are through (see above). */
  commandExited(): void {
    if (this.exited || this.released) return;
    this.exited = true;
    this.before = this.source.readableLength;
    this.timer = setInterval(() => {
      if (!this.heard && !this.held && this.source.readableLength === 0) this.release();
      this.heard = false;
    }, QUIET_AFTER_EXIT_MS);
  }

  /**
   * Stops relaying: `stream` ends after what it already holds, the pipe goes to the drain (or is
   * closed). Idempotent.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    this.source.off('data', this.onData);
    if (!this.stream.destroyed) {
      this.stream.push(null);
      // Ends a stream nobody reads (a file upload's empty stdout) once it holds nothing, as net does.
      this.stream.read(0);
    }
    if (this.drain) this.drain.keep(this.source);
    else this.source.destroy();
  }

  private relay(chunk: Buffer): void {
    this.heard = true;
    let through = false;
    if (this.exited) {
      if (this.before > 0) this.before -= chunk.length;
      else {
        this.after += chunk.length;
        through = chunk.length < READ_BYTES || this.after >= queuedBound();
      }
    }
    if (!this.stream.push(chunk)) {
      this.held = true;
      this.source.pause();
    }
    if (through) this.release();
  }
}
