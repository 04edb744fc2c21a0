import type { Readable } from 'node:stream';

/** Output pipes one lease may leave draining at once, all its execs together. */
export const MAX_DRAINING_PER_LEASE = 64;

/**
 * Keeps reading, and discarding, the output pipes of execs that have returned while a process they
 * started in the background still holds them (`sh -c 'server &'`, `setsid server &`). Closing them
 * instead would kill that process with SIGPIPE (or EPIPE) at its next write, typically a server's
 * first log line after the exec returned: on a server, a background job outlives the command that
 * started it. A pipe ends by itself once its last writer exits (at the latest when the sandbox
 * ends), and is then forgotten.
 *
 * Each pipe costs this process a file descriptor, so one lease keeps at most `max` of them; past
 * that the oldest is closed (its writer then meets SIGPIPE, as a process whose reader went away
 * does anywhere).
 */
export class OutputDrain {
  private readonly pipes = new Set<Readable>();

  constructor(private readonly max: number = MAX_DRAINING_PER_LEASE) {}

  /** Takes over `stream` (its other 'data' listeners removed): read to its end, the bytes dropped. */
  keep(stream: Readable): void {
    if (stream.readableEnded || stream.destroyed) return;
    stream.removeAllListeners('data');
    while (this.pipes.size >= this.max) {
      const oldest = this.pipes.values().next().value;
      if (!oldest) break;
      this.pipes.delete(oldest);
      oldest.destroy();
    }
    this.pipes.add(stream);
    const forget = () => this.pipes.delete(stream);
    stream.once('end', forget).once('close', forget).on('error', forget);
    stream.on('data', () => {});
    stream.resume();
  }

  /** How many pipes are still being drained. */
  get size(): number {
    return this.pipes.size;
  }

  /** Closes every pipe still drained (the sandbox is going away). */
  close(): void {
    for (const p of this.pipes) p.destroy();
    this.pipes.clear();
  }
}
