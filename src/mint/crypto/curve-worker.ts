/**
 * A curve worker's thread (started by the mint's CurvePool, curve-pool.ts): holds the keyset keys
 * it was given and runs batches of swap work (curve-batch.ts), one after the other, answering each
 * with one transferred buffer.
 *
 * Messages in: `{ keys: Uint8Array }` (more 32-byte private keys, appended to the table) or
 * `{ batch: ArrayBuffer }`. Messages out: `{ reply: ArrayBuffer }`, one per batch, in order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runBatch, type WorkerKey, workerKeys } from './curve-batch.js';

type Message = { keys: Uint8Array } | { batch: ArrayBuffer };

const port = parentPort;
if (port === null) throw new Error('curve-worker.ts runs as a worker thread only');

const keys: WorkerKey[] = workerKeys((workerData as { keys: Uint8Array }).keys);

port.on('message', (message: Message) => {
  if ('keys' in message) {
    keys.push(...workerKeys(message.keys));
    return;
  }
  const reply = runBatch(keys, message.batch);
  port.postMessage({ reply }, [reply]);
});
