// The renters of bench/load.bench.mjs, in a worker thread: their own event loop, so that what the
// node's thread does is the node's work only (their CPU still shares the machine's cores).
// workerData: { url, mode, tokens, clients, body }; posts back the timings, in ms.
import { parentPort, workerData } from 'node:worker_threads';
import { closeConnections, createLease, execIn, pool, stopLease } from './renter.mjs';

const { url, mode, tokens, clients, body } = workerData;

function created(result) {
  if (result.status !== 201) {
    throw new Error(
      `POST /v1/leases answered ${result.status}: ${JSON.stringify(result.body).slice(0, 300)}`,
    );
  }
  return result.body;
}

/** rent → exec true → stop by `clients` renters until the tokens are used: each part timed. */
async function cycles() {
  const rent = [];
  const exec = [];
  const stop = [];
  const cycle = [];
  const t0 = performance.now();
  await pool(tokens, clients, async (token) => {
    const c0 = performance.now();
    const r = await createLease(url, body, token);
    const lease = created(r);
    rent.push(r.ms);
    const e0 = performance.now();
    await execIn(url, lease, ['true']);
    const s0 = performance.now();
    exec.push(s0 - e0);
    await stopLease(url, lease);
    const end = performance.now();
    stop.push(end - s0);
    cycle.push(end - c0);
  });
  return { seconds: (performance.now() - t0) / 1000, rent, exec, stop, cycle };
}

/** create → first command answered, `clients` at a time (all at once when clients = tokens.length). */
async function firstCommand() {
  const toFirst = [];
  const leases = [];
  /** Per lease, milliseconds since the epoch (comparable with the node's thread): sent, 201, exec answered. */
  const marks = [];
  const epoch = (t) => performance.timeOrigin + t;
  const t0 = performance.now();
  await pool(tokens, clients, async (token) => {
    const r = await createLease(url, body, token);
    const lease = created(r);
    const answered = performance.now();
    await execIn(url, lease, ['true']);
    const done = performance.now();
    toFirst.push(done - r.t0);
    marks.push({ lease: lease.id, sent: epoch(r.t0), created: epoch(answered), done: epoch(done) });
    leases.push(lease);
  });
  const seconds = (performance.now() - t0) / 1000;
  await pool(leases, 8, (l) => stopLease(url, l));
  return { seconds, toFirst, marks };
}

try {
  const result = mode === 'cycles' ? await cycles() : await firstCommand();
  parentPort.postMessage({ ok: true, result });
} catch (err) {
  parentPort.postMessage({ ok: false, error: String(err?.stack ?? err) });
} finally {
  closeConnections();
}
