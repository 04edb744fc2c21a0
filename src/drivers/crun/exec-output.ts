import { closeSync, constants as fs, fstatSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { CappedBuffer, streamEnded as ended } from '../capped-output.js';
import type { OutputDrain } from './output-drain.js';

/** How long after the command's exit its output may still take to reach end-of-file. */
const OUTPUT_GRACE_MS = 100;

/** What an exec's output came to: the bytes kept up to the cap, and whether more came. */
export interface CapturedOutput {
  stdout: Buffer;
  stderr: Buffer;
  truncated: boolean;
}

/**
 * The read ends of an exec's stdout and stderr FIFOs, read without blocking the node and kept up to
 * the request's cap (capped-output.ts): the one way both exec paths (`crun exec` through the
 * spawner, and the sandbox's exec agent, exec-agent.ts) collect output. Only bytes are read from
 * them, never interpreted.
 *
 * A FIFO's reader sees end-of-file whenever no writer holds it, including before the command has
 * opened it: this holds a write end of its own until the caller says the command has started and
 * ended (releaseWriters), so that end-of-file means that the command and whatever it left running
 * have closed their output.
 */
export class FifoOutputs {
  private readonly streams: Socket[] = [];
  private readonly keepers: number[] = [];
  private readonly out: CappedBuffer;
  private readonly err: CappedBuffer;

  /**
   * Opens `stdoutPath` and `stderrPath` (FIFOs the caller made; a path that is not a FIFO, or is a
   * symbolic link, is refused: throws). `maxOutputBytes` caps each.
   */
  constructor(stdoutPath: string, stderrPath: string, maxOutputBytes: number) {
    this.out = new CappedBuffer(maxOutputBytes);
    this.err = new CappedBuffer(maxOutputBytes);
    try {
      for (const [path, into] of [
        [stdoutPath, this.out],
        [stderrPath, this.err],
      ] as const) {
        const fd = openSync(path, fs.O_RDONLY | fs.O_NONBLOCK | fs.O_NOFOLLOW);
        if (!fstatSync(fd).isFIFO()) {
          closeSync(fd);
          throw new Error(`${path} is not a FIFO`);
        }
        const stream = new Socket({ fd, readable: true, writable: false });
        this.streams.push(stream);
        stream.on('data', (b: Buffer) => into.push(b));
        stream.on('error', () => {});
        this.keepers.push(openSync(path, fs.O_WRONLY | fs.O_NONBLOCK | fs.O_NOFOLLOW));
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /** Closes this side's write ends (the command has ended, or will never start). */
  releaseWriters(): void {
    for (const fd of this.keepers.splice(0)) closeSync(fd);
  }

  /**
   * After the command's exit: waits for its output's end-of-file (a short grace at most, as a
   * background job may hold it for as long as the sandbox lives), then hands the pipes to `drain`
   * (closing them would kill such a job with SIGPIPE at its next write), or closes them without one.
   */
  async finish(drain?: OutputDrain): Promise<CapturedOutput> {
    this.releaseWriters();
    const [out, err] = this.streams as [Socket, Socket];
    await Promise.race([
      Promise.all([ended(out), ended(err)]),
      new Promise((r) => setTimeout(r, OUTPUT_GRACE_MS).unref()),
    ]);
    for (const stream of this.streams) {
      if (drain) drain.keep(stream);
      else stream.destroy();
    }
    return {
      stdout: this.out.value(),
      stderr: this.err.value(),
      truncated: this.out.truncated || this.err.truncated,
    };
  }

  /** Closes everything (the exec failed before its command could run). */
  destroy(): void {
    this.releaseWriters();
    for (const s of this.streams) s.destroy();
  }
}
