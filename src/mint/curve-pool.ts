import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import {
  type CurveJob,
  type CurveOutcome,
  decodeReply,
  encodeBatch,
  jobSize,
  runBatch,
  type WorkerKey,
} from './crypto/curve-batch.js';
import { startModuleWorker } from './crypto/module-worker.js';
import { MintError, MintErrorCode } from './errors.js';
import type { AmountKey } from './keyset-registry.js';
import type { MintLogger } from './mint-core.js';

export interface CurvePoolOptions {
  /** Worker threads (at least 1); default: the machine's cores − 1, at least 1. */
  threads?: number;
  /**
   * Most proofs (inputs + outputs) waiting for or in curve work at once, over all swaps; a swap
   * beyond it is refused with 503 and `Retry-After` (a flood backs off instead of queueing without
   * bound). A swap larger than the bound is still taken when nothing else waits. Default 8000.
   */
  maxQueuedProofs?: number;
  /**
   * A worker that holds work and answers nothing for this long (milliseconds) is taken for stuck:
   * it is given up on (sent nothing more, its late answers ignored, told to exit once it can) and
   * its work redone on the event loop, as when it dies. Default 30 s: a batch is a few
   * milliseconds of work.
   */
  stuckAfterMs?: number;
  logger?: MintLogger;
  /** Told of every worker thread started (tests make one fail to see a crash handled). */
  onWorker?: (worker: Worker) => void;
}

/** The default number of curve threads: one core left to the event loop, at least one thread. */
export function defaultCurveThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

interface Pending {
  job: CurveJob;
  size: number;
  resolve: (outcome: CurveOutcome) => void;
}

interface Thread {
  worker: Worker;
  /** keys of the table the worker holds (a prefix of it) */
  keysSent: number;
  /** batches sent and not answered yet, in order (a worker answers in order) */
  inFlight: Pending[][];
  /** when the worker last answered, or was sent work while it held none (performance.now()) */
  progressAt: number;
  /** given up on (died, stuck, or closing): sent nothing more, its answers ignored */
  gone: boolean;
  /** resolves once the thread has exited */
  exited: Promise<void>;
}

/**
 * Batches a thread may hold at once: one running, the next ones waiting, so that it never idles
 * between them, while the event loop answers the swaps of each batch as soon as it is done.
 */
const MAX_IN_FLIGHT = 8;
/**
 * Most proofs one batch carries (at least one swap, whatever its size): a swap of 10 inputs and 10
 * outputs, ~2 ms of work here, or a dozen swaps of one proof. A swap's answer waits for its batch,
 * then for the durable commit (an fsync, 1 to 12 ms on this shared disk): the sooner its curve work
 * is done, the sooner it joins a commit. A message costs a few tens of microseconds, a proof ~80.
 */
const MAX_BATCH_PROOFS = 24;
/** Workers that may die before the pool gives up on threads and does the work on the event loop. */
const MAX_DEATHS = 3;
const DEFAULT_MAX_QUEUED_PROOFS = 8000;
const DEFAULT_STUCK_AFTER_MS = 30_000;
/** How long close() lets the work under way finish, and the workers exit, before it returns. */
const CLOSE_GRACE_MS = 10_000;

/**
 * The per-proof curve work of swaps (hash_to_curve and C == k·Y per input, C_ = k·B_ and its
 * NUT-12 DLEQ per output) on worker threads, so that the event loop only parses, checks, orders
 * the spend and answers. The swaps that arrive in one event-loop turn go to a worker as one batch
 * (one message of bytes, curve-batch.ts); the keys go to each worker once.
 *
 * The work is pure: nothing is stored or answered until the caller commits the spend after it.
 * So a worker that dies (an exception) or is taken for stuck costs no money: the batches it held
 * are redone on the event loop (the same code, curve-batch.ts runBatch) and their swaps go on; the
 * next batch starts a new worker. After MAX_DEATHS losses the pool stops starting workers and does
 * all the work on the event loop, logging why. A job that throws (never seen: no hash_to_curve
 * point) is an error of that swap alone (a 500).
 *
 * No worker is ever ended from outside (`worker.terminate()`): one cut off inside the native
 * secp256k1 addon throws a C++ exception nothing catches and aborts the whole process. A worker is
 * told to exit, and does so between batches (curve-worker.ts); one given up on is left to finish
 * what it holds alone.
 */
export class CurvePool {
  private readonly threadCount: number;
  private readonly maxQueuedProofs: number;
  private readonly log: MintLogger | undefined;
  private readonly onWorker: ((worker: Worker) => void) | undefined;
  private readonly stuckAfterMs: number;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly keyIndex = new Map<AmountKey, number>();
  private readonly keys: WorkerKey[] = [];
  private threads: Thread[] = [];
  /** every worker not yet exited, those given up on included */
  private readonly living = new Set<Thread>();
  private pending: Pending[] = [];
  private queuedProofs = 0;
  private scheduled = false;
  private deaths = 0;
  private closed = false;

  constructor(options: CurvePoolOptions = {}) {
    this.threadCount = Math.max(1, Math.floor(options.threads ?? defaultCurveThreads()));
    this.maxQueuedProofs = options.maxQueuedProofs ?? DEFAULT_MAX_QUEUED_PROOFS;
    this.log = options.logger;
    this.onWorker = options.onWorker;
    this.stuckAfterMs = options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS;
  }

  /** The index under which jobs name this key (it crosses to the workers once). */
  indexOf(key: AmountKey): number {
    let index = this.keyIndex.get(key);
    if (index === undefined) {
      index = this.keys.length;
      this.keys.push({ privateKey: key.privateKey, publicKeyFull: key.publicKeyFull });
      this.keyIndex.set(key, index);
    }
    return index;
  }

  /**
   * Runs one swap's curve work (keys named by indexOf) and resolves with what it found. Throws
   * MintError 503 when the pool holds maxQueuedProofs already, unless `admitAlways` (work that must
   * not be refused: signing a stopped lease's refund, bounded by the leases there are; it still
   * counts towards the bound for the others). After close(), on the event loop.
   */
  run(job: CurveJob, options: { admitAlways?: boolean } = {}): Promise<CurveOutcome> {
    if (!fitsTheWire(job))
      return Promise.reject(new RangeError('a secret is too long for the curve workers'));
    if (this.closed || this.deaths >= MAX_DEATHS) return Promise.resolve(this.runHere(job));
    const size = jobSize(job);
    if (!options.admitAlways && this.queuedProofs > 0 && this.queuedProofs + size > this.maxQueuedProofs) {
      return Promise.reject(
        new MintError(MintErrorCode.invalidRequest, 'the mint is busy; retry in a second', { status: 503 }),
      );
    }
    this.queuedProofs += size;
    return new Promise<CurveOutcome>((resolve) => {
      this.pending.push({ job, size, resolve });
      if (!this.scheduled) {
        this.scheduled = true;
        // After this turn's other requests: they join the same batch.
        setImmediate(() => {
          this.scheduled = false;
          this.dispatch();
        });
      }
    });
  }

  /**
   * Lets the work under way finish, then tells every worker to exit and waits for them, all within
   * CLOSE_GRACE_MS. Work still out past that is redone on the event loop (its worker exits once it
   * is done with it). Later work runs on the event loop.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.dispatch();
    const until = performance.now() + CLOSE_GRACE_MS;
    while (this.queuedProofs > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    for (const t of [...this.threads]) {
      for (const batch of this.giveUp(t)) for (const p of batch) this.finish(p, this.runHere(p.job));
    }
    const exited = Promise.all([...this.living].map((t) => t.exited));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, until - performance.now()));
    });
    await Promise.race([exited, grace]);
    clearTimeout(timer);
    // One still running past the grace never finishes (never seen): it must not hold the process.
    for (const t of this.living) t.worker.unref();
  }

  private dispatch(): void {
    while (this.pending.length > 0) {
      if (this.closed && this.threads.length === 0) {
        // Closed before any worker started: what waits is done here.
        for (const p of this.pending.splice(0)) this.finish(p, this.runHere(p.job));
        return;
      }
      const thread = this.freeThread();
      if (thread === undefined) return;
      // Spread what waits over the batch slots free now, so that every thread gets some.
      const slots = this.freeSlots();
      let waiting = 0;
      for (const p of this.pending) waiting += p.size;
      const cap = Math.min(MAX_BATCH_PROOFS, Math.ceil(waiting / Math.max(1, slots)));
      let taken = 0;
      let count = 0;
      while (count < this.pending.length && (count === 0 || taken + this.pending[count]!.size <= cap)) {
        taken += this.pending[count]!.size;
        count++;
      }
      const batch = this.pending.splice(0, count);
      try {
        this.send(thread, batch);
      } catch (err) {
        // Never seen (encodeBatch takes what run() admits); those swaps fail alone, the pool goes on.
        this.log?.error({ err }, 'mint: a batch could not be sent to a curve worker');
        for (const p of batch) this.finish(p, { ok: false, error: 'the curve work could not be sent' });
      }
    }
  }

  /** The thread with the fewest batches out, a new one if all are busy and room is left. */
  private freeThread(): Thread | undefined {
    let best: Thread | undefined;
    for (const t of this.threads) {
      if (
        t.inFlight.length < MAX_IN_FLIGHT &&
        (best === undefined || t.inFlight.length < best.inFlight.length)
      )
        best = t;
    }
    if (
      (best === undefined || best.inFlight.length > 0) &&
      this.threads.length < this.threadCount &&
      !this.closed
    )
      return this.startThread();
    return best;
  }

  private freeSlots(): number {
    let slots = (this.threadCount - this.threads.length) * MAX_IN_FLIGHT;
    for (const t of this.threads) slots += MAX_IN_FLIGHT - t.inFlight.length;
    return slots;
  }

  private send(thread: Thread, batch: Pending[]): void {
    if (thread.keysSent < this.keys.length) {
      thread.worker.postMessage({ keys: flatKeys(this.keys.slice(thread.keysSent)) });
      thread.keysSent = this.keys.length;
    }
    const buffer = encodeBatch(batch.map((p) => p.job));
    if (thread.inFlight.length === 0) thread.progressAt = performance.now();
    thread.inFlight.push(batch);
    // Held while work is out, so that a process with nothing else to do waits for it; idle, a
    // worker never keeps the process alive.
    thread.worker.ref();
    thread.worker.postMessage({ batch: buffer }, [buffer]);
  }

  private startThread(): Thread {
    const worker = startModuleWorker(new URL('./crypto/curve-worker.js', import.meta.url), {
      workerData: { keys: flatKeys(this.keys) },
    });
    worker.unref();
    const thread: Thread = {
      worker,
      keysSent: this.keys.length,
      inFlight: [],
      progressAt: performance.now(),
      gone: false,
      exited: new Promise((resolve) => worker.once('exit', () => resolve())),
    };
    worker.on('message', (message: { reply: ArrayBuffer }) => {
      // A worker given up on may still answer what it held: that work was redone already.
      if (thread.gone) return;
      const batch = thread.inFlight.shift();
      if (batch === undefined) return;
      thread.progressAt = performance.now();
      const outcomes = decodeReply(
        batch.map((p) => p.job),
        message.reply,
      );
      batch.forEach((p, i) => {
        this.finish(p, outcomes[i]!);
      });
      if (thread.inFlight.length === 0) worker.unref();
      this.dispatch();
    });
    worker.on('error', (err) => this.lose(thread, err, 'died'));
    worker.on('exit', (code) => {
      this.living.delete(thread);
      this.lose(thread, new Error(`the curve worker exited (${code})`), 'died');
    });
    this.threads.push(thread);
    this.living.add(thread);
    this.watchdog ??= setInterval(() => this.endStuckThreads(), Math.min(1000, this.stuckAfterMs));
    this.watchdog.unref();
    this.onWorker?.(worker);
    return thread;
  }

  /** Gives up on the workers that hold work and answered nothing for stuckAfterMs; redoes their work. */
  private endStuckThreads(): void {
    const now = performance.now();
    for (const t of [...this.threads]) {
      if (t.inFlight.length > 0 && now - t.progressAt > this.stuckAfterMs) {
        this.lose(t, new Error(`no answer for ${this.stuckAfterMs} ms`), 'stuck');
      }
    }
  }

  /**
   * A worker lost (it died, or is taken for stuck): given up on, its work redone here, counted
   * towards MAX_DEATHS. Nothing when it was given up on already; not counted when it exits, idle,
   * after close().
   */
  private lose(thread: Thread, err: Error, how: 'died' | 'stuck'): void {
    if (thread.gone) return;
    const batches = this.giveUp(thread);
    if (this.closed && batches.length === 0) return;
    this.deaths++;
    const swaps = batches.reduce((n, batch) => n + batch.length, 0);
    this.log?.error(
      { err, deaths: this.deaths, swaps },
      this.deaths >= MAX_DEATHS
        ? `mint: curve worker ${how}; no more workers, swaps are verified and signed on the event loop`
        : `mint: curve worker ${how}; its swaps are redone on the event loop`,
    );
    // The work is pure and nothing was stored for it: doing it again here spends nothing twice.
    for (const batch of batches) for (const p of batch) this.finish(p, this.runHere(p.job));
    if (this.deaths >= MAX_DEATHS) {
      for (const p of this.pending.splice(0)) this.finish(p, this.runHere(p.job));
    } else {
      this.dispatch();
    }
  }

  /**
   * Sends a worker nothing more, ignores its answers from now on, and tells it to exit once the
   * batches it holds are done (never `terminate()`: see the class comment). Returns those batches,
   * for the caller to redo or drop.
   */
  private giveUp(thread: Thread): Pending[][] {
    thread.gone = true;
    this.threads = this.threads.filter((t) => t !== thread);
    // Held until it exits: a process that ended with the worker inside a curve call would abort
    // (close() lets go of one that outlives its grace).
    thread.worker.ref();
    thread.worker.postMessage({ exit: true });
    return thread.inFlight.splice(0);
  }

  private finish(p: Pending, outcome: CurveOutcome): void {
    this.queuedProofs -= p.size;
    p.resolve(outcome);
  }

  /** One job on the event loop: the workers' own code, here. */
  private runHere(job: CurveJob): CurveOutcome {
    return decodeReply([job], runBatch(this.keys, encodeBatch([job])))[0]!;
  }
}

/** The wire carries a secret's length in 16 bits; the HTTP schema allows 1024 characters. */
export const MAX_WIRE_SECRET_LENGTH = 16_384;

function fitsTheWire(job: CurveJob): boolean {
  return (
    job.inputs.every((input) => input.secret.length <= MAX_WIRE_SECRET_LENGTH) &&
    (job.issues ?? []).every((issue) => issue.secret.length <= MAX_WIRE_SECRET_LENGTH)
  );
}

function flatKeys(keys: readonly WorkerKey[]): Uint8Array {
  const flat = new Uint8Array(keys.length * 32);
  keys.forEach((k, i) => {
    flat.set(k.privateKey, i * 32);
  });
  return flat;
}
