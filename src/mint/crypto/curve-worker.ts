/**
 * A curve worker's thread (started by the mint's CurvePool, curve-pool.ts): holds the keyset keys
 * it was given and runs batches of swap work (curve-batch.ts), one after the other, answering each
 * with one transferred buffer.
 *
 * Messages in: `{ keys: Uint8Array }` (more 32-byte private keys, appended to the table),
 * `{ batch: ArrayBuffer }`, or `{ exit: true }` (end once the batches before it are answered).
 * Messages out: `{ reply: ArrayBuffer }`, one per batch, in order.
 *
 * The pool never ends this thread from outside (`worker.terminate()`): the native secp256k1 addon
 * is built with C++ exceptions, and a call cut off by a terminating thread throws one nothing
 * catches, which aborts the whole process. The thread ends itself, between batches, when told to.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runBatch, type WorkerKey, workerKeys } from './curve-batch.js';

type Message = { keys: Uint8Array } | { batch: ArrayBuffer } | { exit: true };

const port = parentPort;
if (port === null) throw new Error('curve-worker.ts runs as a worker thread only');

const keys: WorkerKey[] = workerKeys((workerData as { keys: Uint8Array }).keys);

port.on('message', (message: Message) => {
  if ('keys' in message) {
    keys.push(...workerKeys(message.keys));
    return;
  }
  if ('exit' in message) {
    // Nothing else holds the event loop: the thread ends after this turn, outside any curve call.
    port.close();
    return;
  }
  const reply = runBatch(keys, message.batch);
  port.postMessage({ reply }, [reply]);
});
