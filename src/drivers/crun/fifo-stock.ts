import { join } from 'node:path';

/** FIFOs made at once when the stock runs low (one process makes them all). */
const FIFO_BATCH = 32;

/**
 * Makes `paths` as FIFOs (mode 0600), owned by `owner` when given. Node cannot make a FIFO itself:
 * the caller runs mkfifo (and chown) as one host program, off the node's thread.
 */
export type MakeFifos = (paths: readonly string[], owner?: { uid: number; gid: number }) => Promise<void>;

/**
 * Fresh FIFOs in one private directory, made ahead in batches, so that a caller that needs two for
 * an exec takes them without waiting for a process. Each is handed out once (its name is never
 * reused); the caller opens it and removes or renames it.
 */
export class FifoStock {
  private readonly stock: string[] = [];
  private refill: Promise<void> | undefined;
  private count = 0;

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

  /** `count` fresh FIFO paths. Rejects when mkfifo failed. */
  async take(count: number): Promise<string[]> {
    // Short of stock (a burst of execs): make this caller's own, and more for the stock behind.
    const taken = this.stock.length >= count ? this.stock.splice(0, count) : await this.makeSome(count);
    if (this.stock.length < FIFO_BATCH / 2 && this.refill === undefined) {
      this.refill = this.makeSome(FIFO_BATCH)
        .then((paths) => {
          this.stock.push(...paths);
        })
        .catch(() => {})
        .finally(() => {
          this.refill = undefined;
        });
    }
    return taken;
  }

  private async makeSome(count: number): Promise<string[]> {
    const paths = Array.from({ length: count }, () => join(this.dir, `${this.prefix}${this.count++}`));
    await this.make(paths, this.owner);
    return paths;
  }
}
