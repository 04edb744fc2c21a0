import { closeSync, write } from 'node:fs';
import { Worker } from 'node:worker_threads';

/**
 * The worker's code: writes each item's bytes into its FIFO without blocking (the caller opened it
 * O_NONBLOCK), closes it, and answers per item whether all the bytes went in. Only Node's own
 * modules: it runs as a script (eval), whatever loader the node runs under.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { closeSync, writeSync } = require('node:fs');
parentPort.on('message', (batch) => {
  const results = [];
  for (const [seq, fd, data] of batch) {
    let written = false;
    try {
      written = writeSync(fd, data) === Buffer.byteLength(data);
    } catch {}
    try {
      closeSync(fd);
    } catch {}
    results.push(seq, written ? 1 : 0);
  }
  parentPort.postMessage(results);
});
parentPort.postMessage('ready');
`;

type Item = [seq: number, fd: number, data: string];

/**
 * Writes the few bytes that wake a process of a sandbox (an exec's request to its agent, init's and
 * the starter's wake-ups) into FIFOs, from a worker thread, not the node's.
 *
 * A pipe write wakes its reader, which the kernel may run at once on the writer's CPU, ahead of the
 * writer; handing each write to libuv's pool instead wakes a pool thread per write, to the same
 * effect. In a burst of 100 first commands either cost the node's thread 0.2 to 1.7 ms per write
 * (V8 profiles, bench/PROFILES.md, issue 13 session 8). The writes asked for in one event-loop turn
 * go to the worker in one message: one wake-up of another thread per turn. Should the worker fail,
 * each write goes through libuv's pool, as before it.
 */
export class FifoWaker {
  private worker: Worker | undefined;
  private workerFailed = false;
  /** The worker said it runs: only then is a batch handed to it. */
  private workerReady = false;
  private batch: Item[] = [];
  /** Writes for a worker that has not said it runs yet. */
  private early: Item[] = [];
  /** Asked for and not answered yet. */
  private readonly sent = new Map<number, ((written: boolean) => void) | undefined>();
  private seq = 0;
  private scheduled = false;

  /**
   * Writes `data` (a few bytes: one atomic pipe write) into `fd`, which the caller opened
   * non-blocking and hands over (closed here), later in this turn; then tells `done` whether all of
   * it went in (false: nobody reads, or the pipe is full). Never throws.
   */
  write(fd: number, data: string, done?: (written: boolean) => void): void {
    const seq = this.seq++;
    this.sent.set(seq, done);
    this.batch.push([seq, fd, data]);
    if (this.scheduled) return;
    this.scheduled = true;
    // After the rest of this turn's requests: their writes go in the same message.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.batch;
    this.batch = [];
    const worker = this.ensureWorker();
    if (!worker) {
      this.viaPool(batch);
      return;
    }
    // Held while it has writes to answer (a caller may be waiting for nothing else), not after.
    worker.ref();
    if (this.workerReady) worker.postMessage(batch);
    else this.early.push(...batch);
  }

  /** Each write through libuv's pool (no worker). */
  private viaPool(batch: readonly Item[]): void {
    for (const [seq, fd, data] of batch) {
      write(fd, data, (err, written) => {
        try {
          closeSync(fd);
        } catch {
          // closed already
        }
        this.settle(seq, !err && written === Buffer.byteLength(data));
      });
    }
  }

  private settle(seq: number, written: boolean): void {
    const done = this.sent.get(seq);
    this.sent.delete(seq);
    if (this.sent.size === 0) this.worker?.unref();
    done?.(written);
  }

  private ensureWorker(): Worker | undefined {
    if (this.worker || this.workerFailed) return this.worker;
    let worker: Worker;
    try {
      // A plain script of its own: none of the node's flags (a loader, or --input-type=module,
      // which would make it a module without require); trackUnmanagedFds off: it closes
      // descriptors the node's thread opened (else a warning each).
      worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], trackUnmanagedFds: false });
    } catch {
      this.workerFailed = true;
      return undefined;
    }
    worker.on('message', (results: number[] | 'ready') => {
      if (results === 'ready') {
        this.workerReady = true;
        const early = this.early.splice(0);
        if (early.length > 0) worker.postMessage(early);
        return;
      }
      for (let i = 0; i + 1 < results.length; i += 2) this.settle(results[i] as number, results[i + 1] === 1);
    });
    const failed = () => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.workerFailed = true;
      // Never handed to it (it did not start): written through libuv's pool instead.
      this.viaPool(this.early.splice(0));
      // Handed to it and not answered: they may have been written, so taken as written (an exec
      // then waits for its agent's answer up to its timeout, rather than run a second time through
      // the runtime).
      if (!this.workerReady) return;
      const queued = new Set(this.batch.map(([seq]) => seq));
      for (const seq of [...this.sent.keys()]) if (!queued.has(seq)) this.settle(seq, true);
    };
    worker.on('error', failed);
    worker.on('exit', failed);
    // It must not keep the node alive on its own (flush() holds it while writes are under way).
    worker.unref();
    this.worker = worker;
    return worker;
  }
}

let shared: FifoWaker | undefined;

/** This process's FifoWaker (one worker thread for every driver of the process). */
export function fifoWaker(): FifoWaker {
  shared ??= new FifoWaker();
  return shared;
}
