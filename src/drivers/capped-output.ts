/**
 * What every driver's exec does with a command's output (ExecRequest.maxOutputBytes): keep up to a
 * cap, say that more came, and keep reading past the cap so the command never blocks on a full pipe.
 */

/** Collects a stream up to a cap (bytes) and keeps draining past it, so the writer never blocks. */
export class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private length = 0;
  /** True once a byte beyond the cap arrived (and was dropped). */
  truncated = false;

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    const room = this.cap - this.length;
    if (room <= 0) {
      if (chunk.length > 0) this.truncated = true;
      return;
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part.length < chunk.length) this.truncated = true;
    this.chunks.push(part);
    this.length += part.length;
  }

  /** The bytes kept, at most the cap. */
  value(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

/** Resolves once a readable stream has ended or closed (at once if it has, or if there is none). */
export function streamEnded(
  stream: (NodeJS.ReadableStream & { readableEnded: boolean; destroyed?: boolean }) | undefined,
): Promise<void> {
  if (!stream || stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((r) => stream.once('end', () => r()).once('close', () => r()));
}
