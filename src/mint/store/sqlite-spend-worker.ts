import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { SpendWriter } from './postgres-spend.js';
import { INSERT_PROOF_SQL, INSERT_SIGNATURE_SQL, proofRow, signatureRow } from './sqlite-spend-rows.js';
import type { MintProofsTable, MintSignaturesTable } from './tables.js';

/**
 * What the writer needs of the node's Kysely instance: its one SQLite connection, held for the
 * duration of a callback (Kysely's `db.connection()`).
 */
export interface ConnectionHolder {
  connection(): { execute<R>(callback: (connection: unknown) => Promise<R>): Promise<R> };
}

/**
 * A spend as it crosses to the worker: JSON of `{ proofs, signatures }`, rows as positional arrays
 * in the INSERTs' column order. One string per batch crosses: JSON is several times cheaper to make
 * than a structured clone of the many small arrays (which took a seventh of the event loop).
 */
type WireSpend = string;

interface PendingSpend {
  proofs: readonly MintProofsTable[];
  signatures: readonly MintSignaturesTable[];
  spend: WireSpend;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A database error as it crosses back: what isUniqueViolation and the logs read. */
interface WireError {
  code?: unknown;
  message: string;
}

type WorkerReply = { outcomes: Array<WireError | null> } | { error: WireError };

/**
 * Most swaps one batch carries (one transaction, one fsync). Those beyond wait for the next batch,
 * so a burst never makes one unbounded message or transaction.
 */
const MAX_BATCH = 256;

// The worker's code, plain JavaScript evaluated in the worker (a file of its own would be TypeScript
// under the tests and JavaScript once built). It owns a second connection to the same SQLite file,
// with synchronous=FULL as the node's own: COMMIT returns after the WAL's fsync. Each batch is one
// BEGIN IMMEDIATE … COMMIT (the write lock taken first, waiting busy_timeout for another process),
// each swap in it a SAVEPOINT that rolls back alone when one of its rows is there already.
// temp_store=MEMORY: a savepoint keeps the pages it changes in a sub-journal, which spills to an
// unlinked temporary file past 64 KiB (a swap of 10 proofs dirties ~20 random index pages, 80 KiB):
// a file created, written page by page and removed per transaction, ~8% of this thread's CPU
// (issue 13, session 8). In memory it holds at most the pages one swap changes (truncated at each
// RELEASE; a swap is within the mint's input and output limits), and a crash needs it not: the WAL
// is what recovery reads.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const SQLite = require(workerData.module);
const db = new SQLite(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = FULL');
db.pragma('foreign_keys = ON');
db.pragma('temp_store = MEMORY');
const insertProof = db.prepare(${JSON.stringify(INSERT_PROOF_SQL)});
const insertSignature = db.prepare(${JSON.stringify(INSERT_SIGNATURE_SQL)});
const spendOne = db.transaction((spend) => {
  for (const p of spend.proofs) insertProof.run(p);
  for (const s of spend.signatures) insertSignature.run(s);
});
const commitBatch = db.transaction((spends, outcomes) => {
  for (const spend of spends) {
    try {
      spendOne(spend);
      outcomes.push(null);
    } catch (err) {
      outcomes.push(wire(err));
    }
  }
});
function wire(err) {
  return { code: err && err.code, message: String((err && err.message) || err) };
}
parentPort.on('message', (message) => {
  if (message === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  const outcomes = [];
  try {
    commitBatch.immediate(JSON.parse(message), outcomes);
    parentPort.postMessage({ outcomes });
  } catch (err) {
    parentPort.postMessage({ error: wire(err) });
  }
});
`;

/**
 * The swap's commit on a SQLite file, off the event loop: a worker thread with its own connection
 * inserts the rows and waits for the durable COMMIT (synchronous=FULL: the WAL's fsync), while the
 * main thread goes on verifying and signing the next swaps. Group commit: the swaps that arrive
 * while one batch is in flight go together in the next (one transaction, one fsync), each in its
 * own savepoint, so each is still all-or-nothing and a spent proof fails its swap alone.
 *
 * Every caller hears back only after the COMMIT returned in the worker, so an answered swap is on
 * disk. Same rows and unique keys as the other paths (a Y already in mint_proofs: a unique
 * violation, rejected with the database's error code).
 *
 * Two connections to one file must not interleave a transaction: the node's own connection
 * (Kysely) would fail a transaction that read before the worker's commit and writes after it
 * (SQLITE_BUSY_SNAPSHOT), or wait for the worker's lock on the event loop. So a batch holds the
 * Kysely connection (`db.connection()`, the driver's mutex) while the worker writes: no Kysely
 * statement or transaction runs meanwhile, they wait without blocking the event loop. Hence, as with
 * the in-thread writer, never await a swap from inside a Kysely transaction.
 */
export class SqliteWorkerSpendWriter implements SpendWriter {
  private queue: PendingSpend[] = [];
  private flushing = false;
  private worker: Worker | undefined;
  private waiting: ((reply: WorkerReply) => void) | undefined;
  private failed: Error | undefined;
  private closing = false;

  /**
   * @param db the node's Kysely instance over the same file (its connection is held per batch)
   * @param path the SQLite file (better-sqlite3's `name`), opened again by the worker
   * @param fallback commits on the node's own connection once the worker is gone
   */
  constructor(
    private readonly db: ConnectionHolder,
    private readonly path: string,
    private readonly fallback: SpendWriter,
  ) {}

  /** Resolves once the spend is durably committed; rejects with the database's error otherwise. */
  commit(proofs: readonly MintProofsTable[], signatures: readonly MintSignaturesTable[]): Promise<void> {
    // The worker died (its file vanished, it crashed): swaps go on, committed on the event loop.
    if (this.failed !== undefined) return this.fallback.commit(proofs, signatures);
    if (this.closing) return Promise.reject(new Error('the mint is closing'));
    const spend: WireSpend = JSON.stringify({
      proofs: proofs.map(proofRow),
      signatures: signatures.map(signatureRow),
    });
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ proofs, signatures, spend, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /**
   * Lets the batches in flight and queued finish, then ends the worker (its connection closes).
   * Spends asked for after this are refused.
   */
  async close(): Promise<void> {
    this.closing = true;
    while (this.flushing) await new Promise((r) => setTimeout(r, 5));
    const worker = this.worker;
    this.worker = undefined;
    if (worker === undefined) return;
    const exited = new Promise<void>((r) => worker.once('exit', () => r()));
    // Held until it has exited: idle, it is unreferenced, and a process with nothing else left to do
    // (a node shutting down) ended here, before close() returned, and skipped what its caller does
    // after (removing the sandboxes made ahead: they stayed mounted).
    worker.ref();
    worker.postMessage('close');
    await exited;
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        if (this.failed !== undefined) {
          // The worker died with these queued: they were never sent, the fallback commits them.
          for (const p of this.queue.splice(0))
            this.fallback.commit(p.proofs, p.signatures).then(p.resolve, p.reject);
          break;
        }
        await this.db.connection().execute(async () => {
          // Taken once the connection is ours: what arrived while waiting for it joins this batch.
          const batch = this.queue.splice(0, MAX_BATCH);
          let reply: WorkerReply;
          try {
            reply = await this.send(`[${batch.map((p) => p.spend).join(',')}]`);
          } catch (err) {
            for (const p of batch) p.reject(err);
            return;
          }
          if ('error' in reply) {
            // The COMMIT (or BEGIN) itself failed: I/O, disk full, lock timeout. Nothing of it is stored.
            const err = fromWire(reply.error);
            for (const p of batch) p.reject(err);
            return;
          }
          batch.forEach((p, i) => {
            const outcome = reply.outcomes[i];
            if (outcome === null || outcome === undefined) p.resolve();
            else p.reject(fromWire(outcome));
          });
        });
      }
    } catch (err) {
      // The Kysely connection could not be had (store closed): whoever waits hears it.
      for (const p of this.queue.splice(0)) p.reject(err);
    } finally {
      this.flushing = false;
    }
  }

  /** One batch to the worker and its reply; rejects if the worker dies meanwhile. */
  private send(spends: string): Promise<WorkerReply> {
    const worker = this.started();
    return new Promise<WorkerReply>((resolve) => {
      this.waiting = resolve;
      // Held while a batch is out, so a process with nothing else to do still waits for the answer;
      // idle, the worker never keeps the process alive.
      worker.ref();
      worker.postMessage(spends);
    });
  }

  private started(): Worker {
    if (this.failed !== undefined) throw this.failed;
    if (this.worker !== undefined) return this.worker;
    const require = createRequire(import.meta.url);
    // A plain script of its own: none of the node's flags (--input-type=module made it a module
    // without require, so the first spend failed and the worker was lost; a loader is not wanted).
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      workerData: { module: require.resolve('better-sqlite3'), path: this.path },
    });
    worker.unref();
    worker.on('message', (reply: WorkerReply) => {
      worker.unref();
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.(reply);
    });
    const die = (err: Error) => {
      // The worker is gone (could not open the file, crashed): the batch out has an unknown fate
      // to its callers — an error, as any failed commit (a retry is answered by NUT-19) — and later
      // spends take the fallback.
      this.failed = err;
      this.worker = undefined;
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.({ error: { code: (err as { code?: unknown }).code, message: err.message } });
    };
    worker.on('error', die);
    worker.on('exit', (code) => {
      if (!this.closing) die(new Error(`the mint's spend worker exited (${code})`));
    });
    this.worker = worker;
    return worker;
  }
}

function fromWire(err: WireError): Error {
  return Object.assign(new Error(err.message), { code: err.code });
}
