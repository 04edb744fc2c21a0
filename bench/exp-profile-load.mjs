import os from 'node:os';
// Where the node's thread goes while 8 renters cycle rent → `exec true` → stop (issue 13): a V8 CPU
// profile of the node's thread (the renters run in a worker thread, not profiled) over 160 cycles,
// written to ./load.cpuprofile (open it in Chrome DevTools), and the functions holding the thread
// longest printed with their callers. Not a *.bench.mjs: `npm run bench` does not run it.
// The profiler samples the thread whether it runs or waits to run, so on a loaded host a system
// call that wakes another process (a pipe write, a socket write) is charged the wait as well.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Worker } from 'node:worker_threads';
import { topSelfTime } from './lib/cpu-profile.mjs';
import { percentile, prepareTokens, startPaidNode, TINY_OFFER } from './lib/paid-node.mjs';

const CYCLES = Number(process.env.CYCLES ?? 160);
const CLIENTS = Number(process.env.CLIENTS ?? 8);
/** Leases rented and stopped first (JIT, the pool made; as bench/load.bench.mjs). */
const WARM = Number(process.env.WARM ?? 400);
const TINY = TINY_OFFER;
const body = { offer: 'tiny', seconds: 3600, image: 'busybox' };

const t = await startPaidNode({ offers: [TINY] });
try {
  const tokens = await prepareTokens(t.mintUrl, CYCLES + WARM, [2048, 1024, 512, 16]);
  const run = (list, clients) =>
    new Promise((resolve, reject) => {
      const worker = new Worker(new URL('./lib/load-client.mjs', import.meta.url), {
        workerData: { url: t.url, mode: 'cycles', tokens: list, clients, body },
      });
      if (process.env.EXP_NODE_NICE && list.length === CYCLES) os.setPriority(process.pid, Number(process.env.EXP_NODE_NICE));
      worker.once('message', (m) => (m.ok ? resolve(m.result) : reject(new Error(m.error))));
      worker.once('error', reject);
    });
  await run(tokens.splice(-WARM), WARM >= 64 ? CLIENTS : 2); // warm-up: JIT, the pool made
  await t.node.leases.reconciler.teardown?.drained();
  await t.driver.pool.settled();
  // PERF=<file>: `perf record` over the cycles instead of the V8 profile (a CPU view: V8 samples
  // wall time); start the node with --perf-basic-prof for the JS frames' names. PERF_ALL=1: every
  // CPU (the sandboxes, crun, the mounts, kernel workers), for the whole CPU of a cycle.
  const perf = process.env.PERF
    ? spawn(
        'perf',
        [
          'record',
          '-F',
          '1999',
          '-g',
          ...(process.env.PERF_ALL ? ['-a'] : ['-p', String(process.pid)]),
          '-o',
          process.env.PERF,
        ],
        { stdio: 'ignore' },
      )
    : undefined;
  if (perf) await new Promise((r) => setTimeout(r, 500));
  const session = perf ? undefined : new Session();
  session?.connect();
  await session?.post('Profiler.enable');
  await session?.post('Profiler.start');
  const r = await run(tokens.splice(-CYCLES), CLIENTS);
  const summary = `${CYCLES} cycles, ${CLIENTS} renters: ${(CYCLES / r.seconds).toFixed(1)} cycles/s in ${r.seconds.toFixed(2)} s, rent p50 ${percentile(r.rent, 50).toFixed(1)} ms, p99 ${percentile(r.rent, 99).toFixed(1)} ms`;
  if (perf) {
    const exited = new Promise((r) => perf.once('exit', r));
    perf.kill('SIGINT');
    await exited;
    console.log(summary);
  } else {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync('load.cpuprofile', JSON.stringify(profile));
    console.log(summary);
    printTop(profile, 25);
  }
} finally {
  await t.close();
}

/** Self time per function (with its caller chain, 3 deep), largest first, in ms per cycle. */
function printTop(profile, n) {
  for (const [key, us] of topSelfTime(profile, n))
    console.log(`${(us / 1000 / CYCLES).toFixed(2).padStart(7)} ms  ${key}`);
}
