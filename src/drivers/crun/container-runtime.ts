import {
  closeSync,
  constants as fsConstants,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { BatchedDelete, exactIds } from './batched-delete.js';
import { LayerPool } from './layer-pool.js';
import type { RuntimeInfo } from './preflight.js';
import { runDetached, runProcess } from './run-process.js';

/**
 * The driver's calls to the OCI runtime's CLI (crun or runc) over its state directory: listing,
 * starting and deleting the containers of one driver instance. Containers are named
 * `<instance>-<name>`, so that two drivers on one host never see each other's.
 */
export class ContainerRuntime {
  /**
   * @param runtime the runtime binary (preflight.ts).
   * @param stateDir the runtime's --root.
   * @param instance this driver's name prefix (crun-options.ts `instance`).
   */
  constructor(
    readonly runtime: RuntimeInfo,
    readonly stateDir: string,
    private readonly instance: string,
  ) {
    if (runtime.name === 'crun')
      this.batch = new BatchedDelete(
        async (ids) =>
          (
            await runProcess(runtime.path, [
              '--root',
              stateDir,
              'delete',
              '--force',
              '--regex',
              exactIds(ids),
            ])
          ).code === 0,
        (id) => this.deleteOne(id),
      );
  }

  /** crun's deletes, several in one call (batched-delete.ts); runc has no `delete --regex`. */
  private readonly batch: BatchedDelete | undefined;

  /** The runtime's id of the container `name` (a sandbox's directory name). */
  containerId(name: string): string {
    return `${this.instance}-${name}`;
  }

  /** This instance's containers (pool-named only), by name, with the runtime's status. Throws when the listing fails. */
  async containers(): Promise<{ name: string; status: string }[]> {
    const args = ['--root', this.stateDir, 'list', '--format', 'json'];
    let r = await runProcess(this.runtime.path, args);
    // A container being created or deleted meanwhile (the pool refills behind) can make the
    // runtime's listing fail on a state file that is just appearing or going: ask again.
    for (let i = 0; r.code !== 0 && isGoneFile(r.stderr) && i < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10 * (i + 1)));
      r = await runProcess(this.runtime.path, args);
    }
    // Still failing: containers keep going (a teardown of hundreds removes one every few ms, and
    // the runtime's list fails whole on any of them); asked one by one, a gone one is skipped.
    if (r.code !== 0 && isGoneFile(r.stderr)) return this.containersOneByOne();
    if (r.code !== 0) throw new Error(`${this.runtime.name} list failed: ${r.stderr.trim()}`);
    const parsed: unknown = JSON.parse(r.stdout.trim() || '[]');
    if (!Array.isArray(parsed)) return [];
    const out: { name: string; status: string }[] = [];
    for (const entry of parsed as unknown[]) {
      if (typeof entry !== 'object' || entry === null) continue;
      const { id, status } = entry as { id?: unknown; status?: unknown };
      const name = typeof id === 'string' ? this.poolName(id) : undefined;
      if (name !== undefined && typeof status === 'string') out.push({ name, status });
    }
    return out;
  }

  /** The pool name of runtime container `id` when it is one of this instance's, else undefined. */
  private poolName(id: string): string | undefined {
    const prefix = `${this.instance}-`;
    if (!id.startsWith(prefix)) return undefined;
    const name = id.slice(prefix.length);
    return LayerPool.isPoolName(name) ? name : undefined;
  }

  /** containers(), by `state` of each container directory of the runtime's root; gone ones skipped. */
  private async containersOneByOne(): Promise<{ name: string; status: string }[]> {
    let ids: string[];
    try {
      ids = readdirSync(this.stateDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: { name: string; status: string }[] = [];
    for (const id of ids) {
      const name = this.poolName(id);
      if (name === undefined) continue;
      const r = await runProcess(this.runtime.path, ['--root', this.stateDir, 'state', id]);
      if (r.code !== 0) {
        if (isGoneFile(r.stderr) || /does not exist/i.test(r.stderr)) continue;
        throw new Error(`${this.runtime.name} state failed: ${r.stderr.trim()}`);
      }
      const { status } = JSON.parse(r.stdout) as { status?: unknown };
      if (typeof status === 'string') out.push({ name, status });
    }
    return out;
  }

  /**
   * `delete --force`; a container the runtime does not know is no error. With crun, deletes asked
   * for together go in one call (batched-delete.ts).
   */
  removeContainer(name: string): Promise<void> {
    const id = this.containerId(name);
    return this.batch ? this.batch.delete(id) : this.deleteOne(id);
  }

  private async deleteOne(id: string): Promise<void> {
    const r = await runProcess(this.runtime.path, ['--root', this.stateDir, 'delete', '--force', id]);
    if (r.code !== 0 && !deletedAlready(r.stderr)) {
      throw new Error(`${this.runtime.name} delete failed: ${r.stderr.trim()}`);
    }
  }

  /**
   * Lets a created container run. With crun this is what `crun start` does (libcrun status.c:
   * open the state's exec.fifo for writing, unlink it, write one byte), minus a process spawn on
   * the paid path; if the FIFO is not as expected (another runtime or version), the CLI does it.
   */
  async startContainer(name: string, logFile: string): Promise<void> {
    if (this.runtime.name === 'crun') {
      const fifo = join(this.stateDir, this.containerId(name), 'exec.fifo');
      let fd: number | undefined;
      try {
        if (lstatSync(fifo).isFIFO()) {
          // Non-blocking: fails at once (ENXIO) unless the container's first process is waiting on it.
          fd = openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
          unlinkSync(fifo);
          writeSync(fd, Buffer.alloc(1));
          return;
        }
      } catch {
        // fall back to the CLI below
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
    const code = await runDetached(this.runtime.path, [
      `--log=${logFile}`,
      '--root',
      this.stateDir,
      'start',
      this.containerId(name),
    ]);
    if (code !== 0) throw new Error(`${this.runtime.name} start exited ${code}: ${tail(logFile)}`);
  }
}

/** The end of a runtime's log file (its --log), for an error message; empty when unreadable. */
export function tail(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8').trim().slice(-500);
  } catch {
    return '';
  }
}

/** The runtime's `delete` refused a container it does not know (deleted already; layer-pool.ts DELETE_SCRIPT lets the same pass). */
const deletedAlready = (stderr: string): boolean => /not exist|no such/i.test(stderr);

/** Whether a runtime's error is about a state file that is not there (a container coming or going). */
function isGoneFile(stderr: string): boolean {
  return /No such file/i.test(stderr);
}
