#!/usr/bin/env node
// Where each of 100 paid creates sent at once waits (issue 13): a real node in this process (store,
// in-process mint, crun, HTTP on loopback), the renters in a worker thread, a tiny offer, the
// made-ahead pool holding BURST sandboxes when the burst is sent. Every request is stamped (ms since
// the epoch, the renters' and the node's clocks alike) at each stage of its path: sent, HTTP request
// parsed, lease service create, token read, admitted (replay checks, capacity reserved), the store
// transaction's record, redeemed (commit), driver start (pool take, lease files, wake), the 201
// written, the exec request parsed, the runtime's exec, the exec answered. Prints one Markdown
// table: per stage, how long the requests spent in it (p50 / p95 / max). Before the burst, SEQ
// creates one after another (each followed by its first command) are stamped the same way and
// printed as a second table. Not a *.bench.mjs.
//   node bench/profile-burst.mjs            (BURST=100, POOL=100, SEQ=30 by default)
// ALACARTE_BENCH_DIST=<other build's dist> measures another build (e.g. main's) the same way.
// TIMELINE=1 also prints, per tenth of the burst in the order the node parsed it, when it reached
// each milestone (its proofs handed to the curve threads and verified among them).
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { topSelfTime } from './lib/cpu-profile.mjs';
import { leaseRail, percentile, prepareTokens, startPaidNode, TINY_OFFER } from './lib/paid-node.mjs';
import { timeSqliteStatements } from './lib/sqlite-timing.mjs';

const BURST = Number(process.env.BURST ?? 100);
const POOL = Number(process.env.POOL ?? BURST);
const SEQ = Number(process.env.SEQ ?? 30);
/** Leases rented and stopped before anything is measured (JIT, first spawns); 8 renters from 64. */
const WARM = Number(process.env.WARM ?? 4);
const body = { offer: 'tiny', seconds: 3600, image: 'busybox' };
const now = () => performance.timeOrigin + performance.now();

// What the node's thread spends, read when the burst's last first command is answered: its CPU
// time (utime + stime of the main thread: what it ran, not what it waited to run on this shared
// host), and SQLite's statements, which run on it synchronously (better-sqlite3), commits apart.
const thread = { cpuMs: 0, statements: 0, statementMs: 0, commits: 0, commitMs: 0, gcs: 0, gcMs: 0 };
// The main thread's garbage collections (V8's pauses of it), counted as the SQLite statements are.
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    thread.gcs++;
    thread.gcMs += e.duration;
  }
}).observe({ entryTypes: ['gc'] });
function threadCpuMs() {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in ticks (USER_HZ 100)
}
// COMMIT and its synonym END; the group commit's savepoint RELEASEs are not commits.
timeSqliteStatements(/^\s*(commit|end)/i, (took, commit) => {
  thread.statements++;
  thread.statementMs += took;
  if (commit) {
    thread.commits++;
    thread.commitMs += took;
  }
});
let answeredExecs = 0;
let threadAtEnd;
/** Called once the burst's last first command is answered (the CPU profile stops there). */
let allAnswered;

/** Per request (keyed by its token while it has no lease id): stage name -> ms since the epoch. */
const byToken = new Map();
const byLease = new Map();
/** First commands to answer in the phase measured (the thread's figures are read at the last). */
let expected = Number.POSITIVE_INFINITY;
const als = new AsyncLocalStorage();
const stamp = (rec, name) => {
  if (rec && rec[name] === undefined) rec[name] = now();
};

export async function profileBurst(driverOptions = {}, config = {}) {
  const t = await startPaidNode(
    { offers: [TINY_OFFER], ...config },
    { warmLayers: POOL, warmLayersMax: Math.max(POOL, 128), ...driverOptions },
  );
  try {
    const service = t.node.leases;
    const server = t.node.app.server;
    server.prependListener('request', (req, res) => {
      let rec;
      if (req.method === 'POST' && req.url === '/v1/leases') {
        rec = {};
        byToken.set(req.headers['x-cashu'], rec);
        stamp(rec, 'http');
      } else {
        const m = /^\/v1\/leases\/([^/]+)\/exec$/.exec(req.url ?? '');
        rec = m ? byLease.get(m[1]) : undefined;
        stamp(rec, 'execHttp');
      }
      if (rec)
        res.once('finish', () => {
          stamp(rec, rec.execHttp ? 'execAnswered' : 'answered');
          if (rec.execHttp && ++answeredExecs === expected && !threadAtEnd) {
            threadAtEnd = { ...thread, cpuMs: threadCpuMs() };
            allAnswered?.();
          }
        });
    });
    const wrap = (obj, name, before, after) => {
      const original = obj[name];
      obj[name] = async function wrapped(...args) {
        const rec = before(args);
        try {
          return await original.apply(this, args);
        } finally {
          if (rec && after) stamp(rec, after);
        }
      };
    };
    const origCreate = service.create;
    service.create = function create(input, headers, ...rest) {
      const rec = byToken.get(headers['x-cashu']);
      stamp(rec, 'create');
      return als
        .run(rec, () => origCreate.call(this, input, headers, ...rest))
        .finally(() => stamp(rec, 'created'));
    };
    const rail = leaseRail(service);
    const origRedeem = rail.redeem;
    rail.redeem = function redeem(request, price) {
      const rec = als.getStore();
      stamp(rec, 'redeem');
      const admit = request.admit;
      const record = request.record;
      return origRedeem
        .call(
          this,
          {
            ...request,
            admit: async (payment) => {
              stamp(rec, 'admit');
              await admit?.(payment);
              stamp(rec, 'admitted');
            },
            record: async (trx, taken) => {
              stamp(rec, 'record');
              await record(trx, taken);
              stamp(rec, 'recorded');
            },
          },
          price,
        )
        .finally(() => stamp(rec, 'redeemed'));
    };
    wrap(
      t.driver,
      'start',
      ([spec]) => {
        const rec = als.getStore();
        if (rec) byLease.set(spec.leaseId, rec);
        stamp(rec, 'start');
        return rec;
      },
      'started',
    );
    // The curve threads' work of a payment (its proofs' verification; the change's signing, where
    // there is change, comes second): stamped when the first resolves. Private: absent where a
    // build has no curve pool.
    const curve = t.node.mint.curvePool;
    if (curve) {
      const run = curve.run;
      curve.run = function runStamped(...args) {
        const rec = als.getStore();
        const first = rec !== undefined && rec.verifying === undefined;
        if (first) rec.verifying = now();
        return run.apply(this, args).finally(() => first && stamp(rec, 'verified'));
      };
    }
    const pool = t.driver.pool;
    const key = `busybox-${TINY_OFFER.disk_mib}`;
    let dry = 0;
    wrap(
      pool,
      'take',
      () => {
        const rec = als.getStore();
        if (!(pool.ready.get(key)?.length > 0)) dry++;
        stamp(rec, 'take');
        return rec;
      },
      'taken',
    );
    // Private: whether a made-ahead sandbox's init and lxcfs files still answer (absent in older
    // builds; on the driver's MadeAhead, made-ahead.ts, since crun-driver.ts was split).
    const madeAhead = t.driver.made ?? t.driver;
    if (typeof madeAhead.poolInitAlive === 'function')
      wrap(madeAhead, 'poolInitAlive', () => als.getStore(), 'alive');
    wrap(
      t.driver,
      'exec',
      ([ref]) => {
        const rec = byLease.get(ref.leaseId);
        stamp(rec, 'exec');
        return rec;
      },
      'executed',
    );

    // The sandboxes' own CPU from their start's return to their lease's stop (the platform's part
    // inside them: the starter's and init's wake-ups, the command's start, the agent's fork and
    // exec of the first command), and whether their quota throttled them meanwhile: read from their
    // cgroups (v1) at both ends.
    const sandboxCpu = [];
    const cpuAtStart = new Map();
    const cgroupCpu = (leaseId) => {
      try {
        const path = t.driver.cgroupPath(leaseId);
        const stat = readFileSync(`/sys/fs/cgroup/cpu/${path}/cpu.stat`, 'utf8');
        const usage = Number(readFileSync(`/sys/fs/cgroup/cpuacct/${path}/cpuacct.usage`, 'utf8'));
        const field = (k) => Number(new RegExp(`^${k} (\\d+)$`, 'm').exec(stat)?.[1] ?? 0);
        return {
          ms: usage / 1e6,
          throttled: field('nr_throttled'),
          throttledMs: field('throttled_time') / 1e6,
        };
      } catch {
        return undefined; // not v1, or gone
      }
    };
    const origStart = t.driver.start;
    t.driver.start = async function start(spec, ...rest) {
      const handle = await origStart.call(this, spec, ...rest);
      const at = cgroupCpu(spec.leaseId);
      if (at) cpuAtStart.set(spec.leaseId, at);
      return handle;
    };
    const haltName = typeof t.driver.halt === 'function' ? 'halt' : 'stop';
    const origHalt = t.driver[haltName];
    t.driver[haltName] = async function halt(ref, ...rest) {
      const before = cpuAtStart.get(ref.leaseId);
      const after = byLease.has(ref.leaseId) && before ? cgroupCpu(ref.leaseId) : undefined;
      if (before && after)
        sandboxCpu.push({
          ms: after.ms - before.ms,
          throttled: after.throttled - before.throttled,
          throttledMs: after.throttledMs - before.throttledMs,
        });
      return origHalt.call(this, ref, ...rest);
    };
    const tokens = await prepareTokens(t.mintUrl, BURST + SEQ + WARM, [2048, 1024, 512, 16]);
    await run(t, 'cycles', tokens.splice(-WARM), WARM >= 64 ? 8 : 1);
    const readyNow = () => pool.ready.get(key)?.length ?? 0;
    const filled = async () => {
      for (let i = 0; i < 1200 && readyNow() < Math.min(POOL, BURST); i++) await sleep(100);
      await sleep(1000);
    };
    await filled();
    // One renter after another, on a full pool (as the burst).
    let sequential;
    if (SEQ > 0) {
      const seqLoad = loadavg()[0];
      const seq = await run(t, 'first', tokens.splice(-SEQ), 1);
      sequential = { rows: stages(seq.marks), toFirst: seq.toFirst, load: seqLoad };
      byToken.clear();
      byLease.clear();
      await filled();
    }
    const poolReady = readyNow();
    sandboxCpu.length = 0;
    byToken.clear();
    byLease.clear();
    dry = 0;
    const load = loadavg()[0];
    Object.assign(thread, {
      cpuMs: threadCpuMs(),
      statements: 0,
      statementMs: 0,
      commits: 0,
      commitMs: 0,
      gcs: 0,
      gcMs: 0,
    });
    answeredExecs = 0;
    threadAtEnd = undefined;
    expected = BURST;
    const threadAtStart = { ...thread };
    const session = process.env.CPUPROFILE ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    // The leases' stops after the burst are left out of the profile.
    const stopped = session
      ? new Promise((r) => (allAnswered = () => r(session.post('Profiler.stop'))))
      : undefined;
    // PERF=<file>: `perf record` of this process (every thread) over the burst alone, for a CPU
    // view (the V8 profile samples wall time); needs the node started with --perf-basic-prof.
    const perf = process.env.PERF
      ? spawn(
          'perf',
          [
            'record',
            '-F',
            '4999',
            '-g',
            ...(process.env.PERF_ALL ? ['-a'] : ['-p', String(process.pid)]),
            '-o',
            process.env.PERF,
          ],
          {
            stdio: 'ignore',
          },
        )
      : undefined;
    if (perf) await sleep(500);
    const perfDone = perf ? new Promise((r) => perf.once('exit', r)) : undefined;
    const burst = await run(t, 'first', tokens.splice(-BURST), BURST);
    if (perf) {
      perf.kill('SIGINT');
      await perfDone;
    }
    if (session) {
      const { profile } = await stopped;
      writeFileSync(process.env.CPUPROFILE, JSON.stringify(profile));
      printTop(profile, 30);
    }
    const end = threadAtEnd ?? { ...thread, cpuMs: threadCpuMs() };
    const spent = {
      cpuMs: end.cpuMs - threadAtStart.cpuMs,
      statements: end.statements,
      statementMs: end.statementMs,
      commits: end.commits,
      commitMs: end.commitMs,
      gcs: end.gcs,
      gcMs: end.gcMs,
    };
    return {
      sandboxes: summarizeSandboxes(sandboxCpu),
      rows: stages(burst.marks),
      poolReady,
      dry,
      load,
      toFirst: burst.toFirst,
      sequential,
      thread: spent,
    };
  } finally {
    await t.close();
  }
}

function summarizeSandboxes(list) {
  if (list.length === 0) return undefined;
  const throttled = list.filter((s) => s.throttled > 0);
  return {
    n: list.length,
    cpuP50: percentile(
      list.map((s) => s.ms),
      50,
    ),
    throttled: throttled.length,
    throttledMsP50: percentile(
      throttled.map((s) => s.throttledMs),
      50,
    ),
  };
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function run(t, mode, tokens, clients) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./lib/load-client.mjs', import.meta.url), {
      workerData: { url: t.url, mode, tokens, clients, body },
    });
    worker.once('message', (m) => (m.ok ? resolve(m.result) : reject(new Error(m.error))));
    worker.once('error', reject);
  });
}

/** The stages, in path order: [label, from stamp, to stamp]. */
const STAGES = [
  ['sent → HTTP request parsed (accept, read, event-loop queue)', 'sent', 'http'],
  ['→ lease service create (routing, body validation)', 'http', 'create'],
  ['→ token read (decode, keyset, amounts)', 'create', 'admit'],
  ['→ admitted (in-flight keys, replay lookup, capacity reserved)', 'admit', 'admitted'],
  [
    '→ record in the store transaction (proofs verified, transaction begun: waits for the connection)',
    'admitted',
    'record',
  ],
  ['→ lease and payment rows written', 'record', 'recorded'],
  ['→ redeemed (COMMIT, its fsync)', 'recorded', 'redeemed'],
  ['→ driver start called', 'redeemed', 'start'],
  ['→ pool take returned (made ahead, or made now)', 'take', 'taken'],
  ['→ made-ahead sandbox checked (init alive, lxcfs answers)', 'taken', 'alive'],
  ['→ driver start returned (limits, lease files, wake init)', 'alive', 'started'],
  ['→ create returned (state running written, answer read back)', 'started', 'created'],
  ['→ 201 written', 'created', 'answered'],
  ['→ 201 received by the renter', 'answered', 'createdClient'],
  ['→ exec request parsed', 'createdClient', 'execHttp'],
  ['→ driver exec called (authorize)', 'execHttp', 'exec'],
  ['→ driver exec returned (the runtime runs `true`)', 'exec', 'executed'],
  ['→ exec answer received by the renter', 'executed', 'done'],
];

function stages(marks) {
  const recs = marks.map((m) => ({
    ...byLease.get(m.lease),
    sent: m.sent,
    createdClient: m.created,
    done: m.done,
  }));
  const rows = STAGES.map(([label, from, to]) => {
    const d = recs.filter((r) => r[from] !== undefined && r[to] !== undefined).map((r) => r[to] - r[from]);
    return { label, p50: percentile(d, 50), p95: percentile(d, 95), max: Math.max(...d), n: d.length };
  });
  const total = recs.map((r) => r.done - r.sent);
  rows.push({
    label: 'sent → first command answered',
    p50: percentile(total, 50),
    p95: percentile(total, 95),
    max: Math.max(...total),
    n: total.length,
  });
  if (process.env.TIMELINE) timeline(recs);
  const toCreated = recs.map((r) => r.createdClient - r.sent);
  rows.push({
    label: 'sent → 201 received',
    p50: percentile(toCreated, 50),
    p95: percentile(toCreated, 95),
    max: Math.max(...toCreated),
    n: toCreated.length,
  });
  return rows;
}

/**
 * TIMELINE=1: when each tenth of the requests (in the order the node parsed them) reached the main
 * milestones, ms after the burst was sent (the median request of each tenth): whether the requests
 * move through the stages in arrival order or together.
 */
function timeline(recs) {
  const t0 = Math.min(...recs.map((r) => r.sent));
  const byArrival = [...recs].sort((a, b) => a.http - b.http);
  const marks = [
    'http',
    'verifying',
    'verified',
    'record',
    'redeemed',
    'started',
    'answered',
    'execHttp',
    'executed',
    'done',
  ];
  console.error(`| tenth (by parse order) | ${marks.join(' | ')} |`);
  console.error(`| --- |${marks.map(() => ' ---: |').join('')}`);
  const tenth = Math.ceil(byArrival.length / 10);
  for (let i = 0; i < byArrival.length; i += tenth) {
    const group = byArrival.slice(i, i + tenth);
    const at = (m) =>
      percentile(
        group.filter((r) => r[m] !== undefined).map((r) => r[m] - t0),
        50,
      );
    console.error(`| ${i / tenth + 1} | ${marks.map((m) => at(m).toFixed(0)).join(' | ')} |`);
  }
}

export function table(result, title) {
  const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
  return [
    `${title} (pool waiting when sent: ${result.poolReady}; takes that found it empty: ${result.dry}; load average ${result.load.toFixed(1)})`,
    '',
    '| stage (each request) | p50 ms | p95 ms | max ms | n |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...result.rows.map((r) => `| ${r.label} | ${f(r.p50)} | ${f(r.p95)} | ${f(r.max)} | ${r.n} |`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await profileBurst();
  console.log(table(r, `${BURST} paid creates sent at once`));
  const th = r.thread;
  console.log(
    `\nThe node's thread, burst sent → last first command answered: CPU ${th.cpuMs.toFixed(0)} ms; SQLite ${th.statements} statements ${th.statementMs.toFixed(1)} ms, of which ${th.commits} commits ${th.commitMs.toFixed(1)} ms; garbage collection ${th.gcs}× ${th.gcMs.toFixed(1)} ms`,
  );
  if (r.sandboxes) {
    const s = r.sandboxes;
    console.log(
      `The burst's sandboxes (${s.n}), from the start's return to the stop: CPU p50 ${s.cpuP50.toFixed(2)} ms each; throttled by their quota: ${s.throttled}${s.throttled ? `, for p50 ${s.throttledMsP50.toFixed(1)} ms` : ''}`,
    );
  }
  if (r.sequential) {
    console.log('');
    console.log(table({ ...r.sequential, poolReady: 'n/a', dry: 'n/a' }, `${SEQ} sequential`));
  }
  if (process.env.JSON_OUT) writeFileSync(process.env.JSON_OUT, JSON.stringify(r));
}

/** Self time per function (with its callers, 3 deep), largest first, in ms over the burst. */
function printTop(profile, n) {
  for (const [key, us] of topSelfTime(profile, n))
    console.error(`${(us / 1000).toFixed(1).padStart(8)} ms  ${key}`);
}
