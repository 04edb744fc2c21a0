#!/usr/bin/env node
// What one `POST /v1/leases/{id}/exec` of `true` costs the node's thread (issue 13): a real node in
// this process (store, in-process mint, crun, HTTP on loopback), one renter in a worker thread that
// rents 20 leases of the tiny offer, warms up with 100 execs, then runs EXECS execs one after another
// over the leases in turn. Prints the mean exec (sent → answered) and the node's main-thread CPU per
// exec (utime + stime of that thread alone: what it ran, not what it waited to run). Not a
// *.bench.mjs: `npm run bench` does not run it.
//   node bench/profile-exec.mjs              (EXECS=600)
// CPUPROFILE=<file>: also a V8 CPU profile of the execs (100 µs samples; it adds its own cost to the
// thread's CPU), and the functions holding the thread longest printed with their callers.
// ALACARTE_BENCH_DIST=<other build's dist> measures another build the same way.
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Worker } from 'node:worker_threads';
import { topSelfTime } from './lib/cpu-profile.mjs';
import { prepareTokens, startPaidNode, TINY_OFFER } from './lib/paid-node.mjs';

const EXECS = Number(process.env.EXECS ?? 600);
const LEASES = 20;
const body = { offer: 'tiny', seconds: 3600, image: 'busybox' };

/** The main thread's CPU time in ms (USER_HZ 100: 10 ms ticks). */
function threadCpuMs() {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

// The renter: told 'go' twice (rent and warm up; then the measured execs), answers each time.
const RENTER = `
const { workerData, parentPort } = require('node:worker_threads');
const next = () => new Promise((r) => parentPort.once('message', r));
(async () => {
  const { createLease, execIn, closeConnections } = await import(workerData.renter);
  const { url, body, tokens, execs } = workerData;
  await next();
  const leases = [];
  for (const token of tokens) {
    const r = await createLease(url, body, token);
    if (r.status !== 201) throw new Error('POST /v1/leases answered ' + r.status);
    leases.push(r.body);
  }
  for (let i = 0; i < 100; i++) await execIn(url, leases[i % leases.length], ['true']);
  parentPort.postMessage('warm');
  await next();
  const t0 = performance.now();
  for (let i = 0; i < execs; i++) await execIn(url, leases[i % leases.length], ['true']);
  parentPort.postMessage((performance.now() - t0) / execs);
  closeConnections();
})().catch((e) => parentPort.postMessage({ error: String(e) }));
`;

const t = await startPaidNode({ offers: [TINY_OFFER] });
try {
  const tokens = await prepareTokens(t.mintUrl, LEASES, [2048, 1024, 512, 16]);
  const renter = new Worker(RENTER, {
    eval: true,
    workerData: {
      url: t.url,
      body,
      tokens,
      execs: EXECS,
      renter: new URL('./lib/renter.mjs', import.meta.url).href,
    },
  });
  const ask = () =>
    new Promise((resolve, reject) => {
      renter.once('message', (m) => (m?.error ? reject(new Error(m.error)) : resolve(m)));
      renter.postMessage('go');
    });
  await ask();
  const session = process.env.CPUPROFILE ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  }
  const cpu0 = threadCpuMs();
  const perExec = await ask();
  const cpuPerExec = (threadCpuMs() - cpu0) / EXECS;
  console.log(
    `${EXECS} execs of true, one renter: ${perExec.toFixed(2)} ms each (sent → answered); ` +
      `the node's main thread ${cpuPerExec.toFixed(2)} ms of CPU per exec`,
  );
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(process.env.CPUPROFILE, JSON.stringify(profile));
    for (const [key, us] of topSelfTime(profile, 25))
      console.log(`${(us / 1000 / EXECS).toFixed(3).padStart(7)} ms  ${key}`);
  }
} finally {
  await t.close();
}
