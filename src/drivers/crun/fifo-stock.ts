import { join } from 'node:path';

/** FIFOs made at once when the stock runs low and nobody waits (one process makes them all). */
const FIFO_BATCH = 32;

/** Most FIFOs one batch makes (one mkfifo's argument list; a burst is served by a few batches). */
const MAX_BATCH = 512;

/** How many batches a caller short of stock waits for before it gives up (each serves others first). */
const MAX_ROUNDS = 8;

/**
 * Makes `paths` as FIFOs (mode 0600), owned by `owner` when given. Node cannot make a FIFO itself:
 * the caller runs mkfifo (and chown) as one host program, off the node's thread.
 */
export type MakeFifos = (paths: readonly string[], owner?: { uid: number; gid: number }) => Promise<void>;

/**
 * Fresh FIFOs in one private directory, made ahead in batches, so that a caller that needs two for
 * an exec takes them without waiting for a process. Each is handed out once (its name is never
 * reused); the caller opens it and removes or renames it.
 *
 * A burst of execs (100 first commands at once) empties any fixed stock: the callers short of
 * FIFOs then wait for one batch made for all of them (sized by how many wait, and by how many
 * were taken since the last batch), not a host program each, which made a burst's last execs wait
 * behind dozens of mkfifo processes competing for the CPU with the execs themselves.
 */
export class FifoStock {
  private readonly stock: string[] = [];
  private refill: Promise<void> | undefined;
  private count = 0;
  /** FIFOs asked for by callers waiting for a batch. */
  private wanted = 0;
  /** FIFOs taken since the last batch was started: the next one makes at least as many. */
  private takenSince = 0;

  /**
   * `dir`: a directory only root can reach; `owner`: who owns the FIFOs (root inside the sandboxes,
   * so that they may open them once moved into a sandbox's run directory); `prefix` names them.
   */
  constructor(
    private readonly dir: string,
    private readonly make: MakeFifos,
    private readonly owner?: { uid: number; gid: number },
    private readonly prefix = 'f',
  ) {}

  /** `count` fresh FIFO paths. Rejects when mkfifo failed, or the stock stayed short of them. */
  async take(count: number): Promise<string[]> {
    for (let round = 0; this.stock.length < count; round++) {
      if (round >= MAX_ROUNDS) throw new Error('no FIFOs left in the stock');
      this.wanted += count;
      try {
        await this.batch();
      } finally {
        this.wanted -= count;
      }
    }
    const taken = this.stock.splice(0, count);
    this.takenSince += count;
    if (this.stock.length < FIFO_BATCH / 2) this.batch().catch(() => {});
    return taken;
  }

  /** How many FIFOs wait in the stock now (for tests). */
  get size(): number {
    return this.stock.length;
  }

  /** The batch under way, or a new one: as many as wait for one, and at least as many as went since the last. */
  private batch(): Promise<void> {
    this.refill ??= (async () => {
      // Let the callers of this turn say how many they need first: one batch for them all.
      await new Promise((r) => setImmediate(r));
      const n = Math.min(MAX_BATCH, Math.max(FIFO_BATCH, this.wanted + FIFO_BATCH, this.takenSince));
      this.takenSince = 0;
      const paths = Array.from({ length: n }, () => join(this.dir, `${this.prefix}${this.count++}`));
      await this.make(paths, this.owner);
      this.stock.push(...paths);
    })().finally(() => {
      this.refill = undefined;
    });
    return this.refill;
  }
}
