import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Where a backend's subscription resumes after a restart: LND's `settle_index`, CLN's `pay_index`,
 * NWC's last `settled_at`. A file in the node's data directory, one decimal integer, replaced
 * atomically (write + rename), so a crash leaves the old or the new value, never half of one.
 * Only ever moves forward.
 */
export class CursorFile {
  private value: bigint;

  constructor(private readonly path: string) {
    this.value = 0n;
    try {
      const text = readFileSync(path, 'utf8').trim();
      if (/^[0-9]{1,20}$/.test(text)) this.value = BigInt(text);
    } catch {
      // No cursor yet: start from the beginning the backend defines.
    }
  }

  /** The last position saved (0 when none). */
  get(): bigint {
    return this.value;
  }

  /** Saves `next` when it is past the current position. */
  advance(next: bigint): void {
    if (next <= this.value) return;
    this.value = next;
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, `${next}\n`, { mode: 0o600 });
    renameSync(tmp, this.path);
  }
}
