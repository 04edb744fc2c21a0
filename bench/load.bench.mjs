#!/usr/bin/env node
// Paid leases under load (issue 13) on a real node (store, in-process mint, crun, HTTP on loopback),
// the renters in a worker thread (bench/lib/load-client.mjs), a tiny offer so that 100 fit:
//  1. create → first command answered: one renter after another, and 100 sent at once;
//  2. renters cycling rent → `exec true` → stop, 1 and 8 at a time (cycles/s, rent p50/p99);
//  3. where the time goes in 2 (per lease, at 1 and 8 renters): the node thread's busy share and
//     delay, the paid path's parts, process spawns holding the thread, SQLite, the pool running dry.
// Prints one Markdown section; `node bench/run.mjs load` runs only this.
import { execSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
// Before the built code binds child_process.spawn, so that the node's children are timed.
import { childTimes, resetChildTimes } from './lib/child-timing.mjs';
import {
  EXACT_HOUR,
  leaseRail,
  ms,
  percentile,
  prepareTokens,
  startPaidNode,
  TINY_OFFER,
} from './lib/paid-node.mjs';
import { timeSqliteStatements } from './lib/sqlite-timing.mjs';

const SEQUENTIAL = 30;
const SINGLE_CYCLES = 40;
const CYCLES = 160;
const CLIENTS = 8;
const BURST = 100;
/**
 * Leases rented and stopped (8 renters) before anything is measured: the node then runs the paid
 * path's code as a server that has been up a while does (V8 optimizes a function only after many
 * calls). How much it matters varies: a burst's thread CPU 340–370 ms after 4 leases against
 * 220–240 after 400 on a loaded host, within the noise on a quieter one (bench/PROFILES.md,
 * session 9). LOAD_WARM=4 measures a node just started.
 */
const WARM = Number(process.env.LOAD_WARM ?? 400);

const TINY = TINY_OFFER;
const DENOMINATIONS = EXACT_HOUR;
const body = { offer: 'tiny', seconds: 3600, image: 'busybox' };

// ---- the profile: what the node's thread does per lease -------------------------------------------

const parts = {};
function timeCalls(obj, name, key) {
  const original = obj[name];
  parts[key] = [];
  obj[name] = async function timed(...args) {
    const t0 = performance.now();
    try {
      return await original.apply(this, args);
    } finally {
      parts[key].push(performance.now() - t0);
    }
  };
}

// SQLite runs on the node's thread, synchronously (better-sqlite3): every statement's time is the
// thread's. Commits (fsync) are the COMMIT statements and the writes outside transactions.
const sqlite = { ms: 0, statements: 0, commitMs: 0, commits: 0 };
// COMMIT and its synonym END; the group commit's savepoint RELEASEs are not commits.
timeSqliteStatements(/^\s*(commit|end)\b/i, (took, commit) => {
  sqlite.ms += took;
  sqlite.statements++;
  if (commit) {
    sqlite.commitMs += took;
    sqlite.commits++;
  }
});

function resetProfile(pool) {
  for (const list of Object.values(parts)) list.length = 0;
  Object.assign(sqlite, { ms: 0, statements: 0, commitMs: 0, commits: 0 });
  pool.dry = 0;
  pool.takes = 0;
  resetChildTimes();
}

function watchPool(driver) {
  const layerPool = driver.pool;
  const counts = { dry: 0, takes: 0 };
  const take = layerPool.take.bind(layerPool);
  layerPool.take = (image, diskMib, claim) => {
    counts.takes++;
    if (!(layerPool.ready.get(`${image}-${diskMib}`)?.length > 0)) counts.dry++;
    return take(image, diskMib, claim);
  };
  return counts;
}

/** Runs the renters' worker; returns its result with the node thread's busy share and delay meanwhile. */
async function renters(t, mode, tokens, clients) {
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const message = await new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./lib/load-client.mjs', import.meta.url), {
      workerData: { url: t.url, mode, tokens, clients, body },
    });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  delay.disable();
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  if (!message.ok) throw new Error(message.error);
  return {
    ...message.result,
    busy: elu.utilization,
    busyMs: elu.active,
    cpuMs: (cpu.user + cpu.system) / 1000,
    delayP99: delay.percentile(99) / 1e6,
    delayMax: delay.max / 1e6,
  };
}

/** Profile rows of one cycling run: per lease (cycle), at `clients` renters. */
function profile(run, pool, n) {
  const p50 = (k) => percentile(parts[k] ?? [], 50);
  const spawnMs = [...childTimes.values()].flatMap((c) => c.spawn).reduce((a, b) => a + b, 0);
  const spawns = [...childTimes.values()].reduce((a, c) => a + c.spawn.length, 0);
  const byVerb = [...childTimes.entries()]
    .sort((a, b) => b[1].spawn.length - a[1].spawn.length)
    .map(
      ([k, v]) => `${k.trim()} ${(v.spawn.length / n).toFixed(1)}× (${ms(percentile(v.exit, 50))} to exit)`,
    )
    .join('; ');
  return {
    cyclesPerS: n / run.seconds,
    rentP50: percentile(run.rent, 50),
    rentP99: percentile(run.rent, 99),
    execP50: percentile(run.exec, 50),
    stopP50: percentile(run.stop, 50),
    cycleP50: percentile(run.cycle, 50),
    create: p50('create'),
    redeem: p50('redeem'),
    start: p50('start'),
    exec: p50('exec'),
    stop: p50('stop'),
    remove: p50('remove'),
    busyPerLease: run.busyMs / n,
    busy: run.busy,
    cpuPerLease: run.cpuMs / n,
    delayP99: run.delayP99,
    delayMax: run.delayMax,
    spawnsPerLease: spawns / n,
    spawnMsPerLease: spawnMs / n,
    byVerb,
    sqlitePerLease: sqlite.ms / n,
    commitsPerLease: sqlite.commits / n,
    commitMsPerLease: sqlite.commitMs / n,
    dry: pool.takes ? pool.dry / pool.takes : 0,
  };
}

/**
 * CPU of everything a lease makes run, in ms: this process (node and renters), the programs it
 * spawned and waited for, those of the spawner shell (spawner.ts), and the sandboxes' own cgroups.
 */
function cpuTotal(t) {
  const ticks = (pid) => {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return { self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
    } catch {
      return { self: 0, children: 0 };
    }
  };
  const hz = 100;
  const usage = process.cpuUsage();
  let ms = (usage.user + usage.system) / 1000 + (ticks(process.pid).children * 1000) / hz;
  const childrenOf = (task) => {
    try {
      return readFileSync(`/proc/self/task/${task}/children`, 'utf8').split(' ').filter(Boolean);
    } catch {
      return []; // the thread ended meanwhile
    }
  };
  for (const task of readdirSync('/proc/self/task')) {
    for (const pid of childrenOf(task)) {
      const c = ticks(pid);
      ms += ((c.self + c.children) * 1000) / hz;
    }
  }
  try {
    ms +=
      Number(readFileSync(`/sys/fs/cgroup/cpuacct/alacarte/${t.driver.instance}/cpuacct.usage`, 'utf8')) /
      1e6;
  } catch {
    try {
      const stat = readFileSync(`/sys/fs/cgroup/alacarte/${t.driver.instance}/cpu.stat`, 'utf8');
      ms += Number(/usage_usec (\d+)/.exec(stat)?.[1] ?? 0) / 1000;
    } catch {
      // no CPU accounting readable: the figure leaves the sandboxes out
    }
  }
  return ms;
}

/** One variant's figures, as JSON on stdout. */
async function measure(variant) {
  // With LOAD_BASE, "before" is that commit's build as it was (ALACARTE_BENCH_DIST), not an emulation.
  const before = variant === 'before' && !process.env.ALACARTE_BENCH_DIST;
  const t = await startPaidNode({ offers: [TINY] }, before ? { spawnerShell: false, warmLayersMax: 2 } : {});
  try {
    // Before issue 13: the sandbox of a stopped lease was removed before the answer.
    if (before) t.driver.halt = undefined;
    const service = t.node.leases;
    timeCalls(service, 'create', 'create');
    timeCalls(service, 'stop', 'stop');
    timeCalls(leaseRail(service), 'redeem', 'redeem');
    timeCalls(t.driver, 'start', 'start');
    timeCalls(t.driver, 'exec', 'exec');
    timeCalls(t.driver, 'stop', 'remove');
    const pool = watchPool(t.driver);
    const need = WARM + SEQUENTIAL + SINGLE_CYCLES + CYCLES + BURST;
    const tokens = await prepareTokens(t.mintUrl, need, DENOMINATIONS);

    await warmUp(t, tokens.splice(-WARM));

    const seq = await renters(t, 'first', tokens.splice(-SEQUENTIAL), 1);
    await new Promise((r) => setTimeout(r, 500));

    const phase = async (n, clients) => {
      resetProfile(pool);
      const cpu0 = cpuTotal(t);
      const run = await renters(t, 'cycles', tokens.splice(-n), clients);
      const result = profile(run, pool, n);
      result.allCpuPerLease = (cpuTotal(t) - cpu0) / n;
      await new Promise((r) => setTimeout(r, 1000));
      return result;
    };
    const one = await phase(SINGLE_CYCLES, 1);
    const eight = await phase(CYCLES, CLIENTS);
    // A burst after a busy spell: the pool has been sized by that demand and refilled ahead; give it
    // up to 20 s to reach its size, as it would between real bursts, and report what was ready.
    const layerPool = t.driver.pool;
    const key = `busybox-${TINY.disk_mib}`;
    const readyNow = () => layerPool.ready.get(key)?.length ?? 0;
    const target = layerPool.target(key);
    for (let i = 0; i < 200 && readyNow() < Math.min(BURST, target); i++)
      await new Promise((r) => setTimeout(r, 100));
    const poolReady = readyNow();
    const burst = await renters(t, 'first', tokens.splice(-BURST), BURST);
    return {
      variant,
      seqP50: percentile(seq.toFirst, 50),
      seqP95: percentile(seq.toFirst, 95),
      burstP50: percentile(burst.toFirst, 50),
      burstP95: percentile(burst.toFirst, 95),
      poolReady,
      one,
      eight,
    };
  } finally {
    await t.close();
  }
}

/**
 * The burst again on a node whose operator expects bursts: the pool's floor (warmLayers) set to the
 * burst's size, and every one of them made before the burst is sent.
 */
async function measureWarmBurst(variant) {
  // "before" as in measure(): every host program forked from Node, the removal in the stop's answer;
  // only the pool differs, its floor being what this row is about.
  const before = variant === 'before' && !process.env.ALACARTE_BENCH_DIST;
  const t = await startPaidNode(
    { offers: [TINY] },
    { warmLayers: BURST, warmLayersMax: BURST, ...(before ? { spawnerShell: false } : {}) },
  );
  try {
    if (before) t.driver.halt = undefined;
    const tokens = await prepareTokens(t.mintUrl, BURST + WARM, DENOMINATIONS);
    await warmUp(t, tokens.splice(-WARM)); // the pool then fills to its floor
    const key = `busybox-${TINY.disk_mib}`;
    const readyNow = () => t.driver.pool.ready.get(key)?.length ?? 0;
    for (let i = 0; i < 1200 && readyNow() < BURST; i++) await new Promise((r) => setTimeout(r, 100));
    const poolReady = readyNow();
    await new Promise((r) => setTimeout(r, 1000));
    const burst = await renters(t, 'first', tokens.splice(-BURST), BURST);
    return { p50: percentile(burst.toFirst, 50), p95: percentile(burst.toFirst, 95), poolReady };
  } finally {
    await t.close();
  }
}

/**
 * Rents and stops a lease per token (8 renters; 1 for a few), then waits until the stopped leases'
 * sandboxes are removed (their teardown runs after the answers) and the pool is refilled, so that
 * what is measured next does not share the host with the warm-up's leftovers.
 */
async function warmUp(t, tokens) {
  await renters(t, 'cycles', tokens, tokens.length >= 64 ? CLIENTS : 1);
  await t.node.leases.reconciler.teardown?.drained();
  await t.driver.pool.settled();
  await new Promise((r) => setTimeout(r, 500));
}

/** The mean of two runs' figures, field by field (text fields from the first). */
function mean(a, b) {
  if (typeof a === 'number') return (a + b) / 2;
  if (a === null || typeof a !== 'object') return a;
  return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, mean(v, b[k])]));
}

/**
 * Builds the node as it was at `commit` (git archive, this checkout's node_modules, tsc) in a
 * temporary directory; returns its dist directory.
 */
function buildBase(commit) {
  const repo = fileURLToPath(new URL('..', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-bench-base-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  execSync(`git archive ${JSON.stringify(commit)} | tar -x -C ${JSON.stringify(dir)}`, { cwd: repo });
  symlinkSync(realpathSync(join(repo, 'node_modules')), join(dir, 'node_modules'));
  execSync('npx tsc -p tsconfig.build.json', { cwd: dir, stdio: 'ignore' });
  return join(dir, 'dist');
}

const BASE = process.env.LOAD_BASE;
let baseDist;

/** Runs this program once per variant, alternating, each in its own process (a driver's spawner is per process). */
function runVariant(variant) {
  if (BASE && variant === 'before') baseDist ??= buildBase(BASE);
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
    encoding: 'utf8',
    env: {
      ...process.env,
      LOAD_VARIANT: variant,
      ...(variant === 'before' && baseDist ? { ALACARTE_BENCH_DIST: baseDist } : {}),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`the ${variant} run exited ${r.status}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function main() {
  const loadBefore = loadavg()[0];
  // before, after, after, before: a load that drifts during the run weighs on both alike.
  const a1 = runVariant('before');
  const b1 = runVariant('after');
  const b2 = runVariant('after');
  const a2 = runVariant('before');
  const was = mean(a1, a2);
  const now = mean(b1, b2);
  const met = (ok) => (ok ? 'MET' : 'NOT MET');
  const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
  const cols = (f) => `${f(was.one)} | ${f(was.eight)} | ${f(now.one)} | ${f(now.eight)}`;
  const rentRatio = now.eight.rentP99 / now.one.rentP50;
  const out = [
    '## Paid leases under load (issue 13)',
    '',
    `Real node in-process (SQLite WAL, durable commits, in-process mint, crun driver), HTTP on loopback; the renters run in a worker thread ` +
      `(their own event loop, the same ${availableParallelism()} cores). Tiny offer (0.01 vCPU, 16 MiB, 1 MiB disk, busybox), each lease paid exactly with 4 proofs; ` +
      `a stop refunds the unused time (the mint signs the refund). ` +
      (BASE
        ? `**before** = the node as built from commit \`${BASE}\` (LOAD_BASE), run in the same bench run; **after** = this checkout. `
        : `**before** = the node as it was before issue 13, run in the same bench run ` +
          `(sandbox removal inside the stop's answer, every host program forked from Node, a fixed pool of 2 made ahead); **after** = now ` +
          `(stop kills the sandbox and answers, removal queued; host programs through one busybox shell; the pool follows demand). `) +
      `The renters use node:http with keep-alive connections. ` +
      `Before anything is measured, each node serves ${WARM} leases (8 renters) and removes their sandboxes: it runs the paid path as a server that has been up a while does; \`LOAD_WARM=4\` measures a node just started. ` +
      `Each variant runs in its own process, in the order before, after, after, before; each figure is the mean of its variant's two runs. Machine load (1-min average) at start ${loadBefore.toFixed(1)}, at end ${loadavg()[0].toFixed(1)}: the host is shared, compare within this run.`,
    '',
    '| create → first command answered | before p50 / p95 | after p50 / p95 | after ÷ before (p50) |',
    '| --- | --- | --- | --- |',
    `| sequential (one renter, ${SEQUENTIAL}) | ${ms(was.seqP50)} / ${ms(was.seqP95)} | ${ms(now.seqP50)} / ${ms(now.seqP95)} | ${ratio(now.seqP50, was.seqP50)} |`,
    `| ${BURST} sent at once (sandboxes made ahead and waiting when sent: before ${was.poolReady}, after ${now.poolReady}) | ${ms(was.burstP50)} / ${ms(was.burstP95)} | ${ms(now.burstP50)} / ${ms(now.burstP95)} | ${ratio(now.burstP50, was.burstP50)} |`,
    `| ${BURST} sent at once, the pool's floor set to ${BURST} (warmLayers; waiting when sent: before ${was.warmBurst.poolReady}, after ${now.warmBurst.poolReady}) | ${ms(was.warmBurst.p50)} / ${ms(was.warmBurst.p95)} | ${ms(now.warmBurst.p50)} / ${ms(now.warmBurst.p95)} | ${ratio(now.warmBurst.p50, was.warmBurst.p50)} |`,
    '',
    `| rent → \`exec true\` → stop, cycling (1 renter: ${SINGLE_CYCLES} cycles, ${CLIENTS}: ${CYCLES}) | before, 1 | before, ${CLIENTS} | after, 1 | after, ${CLIENTS} |`,
    '| --- | --- | --- | --- | --- |',
    `| cycles/s | ${cols((x) => x.cyclesPerS.toFixed(1))} |`,
    `| rent (POST → 201) p50 / p99 | ${cols((x) => `${ms(x.rentP50)} / ${ms(x.rentP99)}`)} |`,
    `| exec p50 | ${cols((x) => ms(x.execP50))} |`,
    `| stop (DELETE → 200) p50 | ${cols((x) => ms(x.stopP50))} |`,
    `| whole cycle p50 | ${cols((x) => ms(x.cycleP50))} |`,
    '| **profile, per lease (cycle)** | | | | |',
    `| CPU of everything (node, renters, runtime and mount programs, sandboxes), ms | ${cols((x) => x.allCpuPerLease.toFixed(1))} |`,
    `| ↳ of which this process (node thread, renters' thread, mint), ms | ${cols((x) => x.cpuPerLease.toFixed(1))} |`,
    `| node thread busy (event-loop utilization), ms / share of the run | ${cols((x) => `${x.busyPerLease.toFixed(1)} / ${(x.busy * 100).toFixed(0)}%`)} |`,
    `| event-loop delay p99 / max | ${cols((x) => `${ms(x.delayP99)} / ${ms(x.delayMax)}`)} |`,
    `| processes forked from the node / ms they hold its thread | ${cols((x) => `${x.spawnsPerLease.toFixed(1)} / ${x.spawnMsPerLease.toFixed(1)}`)} |`,
    `| SQLite on the thread: all statements / commits (n) | ${cols((x) => `${x.sqlitePerLease.toFixed(1)} / ${x.commitMsPerLease.toFixed(1)} ms (${x.commitsPerLease.toFixed(1)})`)} |`,
    `| lease service create p50 | ${cols((x) => ms(x.create))} |`,
    `| ↳ token redeem (read, admit, verify + store) p50 | ${cols((x) => ms(x.redeem))} |`,
    `| ↳ driver start p50 | ${cols((x) => ms(x.start))} |`,
    `| ↳ starts that found the made-ahead pool empty | ${cols((x) => `${(x.dry * 100).toFixed(0)}%`)} |`,
    `| driver exec p50 | ${cols((x) => ms(x.exec))} |`,
    `| lease service stop p50 | ${cols((x) => ms(x.stop))} |`,
    `| ↳ sandbox removal (runtime delete, unmounts) p50, in the answer before, queued after | ${cols((x) => ms(x.remove))} |`,
    '',
    `- processes forked from the node per lease, before (${CLIENTS} renters): ${was.eight.byVerb}`,
    `- after (${CLIENTS} renters): ${now.eight.byVerb || 'none'} (host programs, \`crun exec\` included, go through the spawner shell)`,
    ...[was, now].map((v) => {
      const x = v.eight;
      const rest = x.busyPerLease - x.spawnMsPerLease - x.sqlitePerLease;
      return `- node thread per lease at ${CLIENTS} renters, ${v.variant}: ${x.busyPerLease.toFixed(1)} ms = forks ${x.spawnMsPerLease.toFixed(1)} + SQLite ${x.sqlitePerLease.toFixed(1)} + the rest ${rest.toFixed(1)} (HTTP, JSON, the mint's crypto, lease logic, and time the thread was runnable but not running on this shared host)`;
    }),
    `- ${CLIENTS}-renter cycles/s, after ÷ before: ${ratio(now.eight.cyclesPerS, was.eight.cyclesPerS)}; rent p99: ${ratio(now.eight.rentP99, was.eight.rentP99)}`,
    `- Target ≥ 50 cycles/s at ${CLIENTS} renters: ${now.eight.cyclesPerS.toFixed(1)}: ${met(now.eight.cyclesPerS >= 50)}`,
    `- Target rent p99 at ${CLIENTS} renters ≤ 3× the single-renter p50: ${ms(now.eight.rentP99)} vs 3 × ${ms(now.one.rentP50)} (${rentRatio.toFixed(1)}×): ${met(rentRatio <= 3)}`,
    `- Target ${BURST} at once p50 ≤ 100 ms, p95 ≤ 250 ms: pool sized by demand ${ms(now.burstP50)} / ${ms(now.burstP95)}: ${met(now.burstP50 <= 100 && now.burstP95 <= 250)}; pool floor ${BURST}: ${ms(now.warmBurst.p50)} / ${ms(now.warmBurst.p95)}: ${met(now.warmBurst.p50 <= 100 && now.warmBurst.p95 <= 250)}`,
    `- Target sequential p50 ≤ 40 ms: ${ms(now.seqP50)}: ${met(now.seqP50 <= 40)}`,
    '',
    '| create → first command, ms | sequential p50 | 100 at once p50 | 100 at once p95 |',
    '| --- | ---: | ---: | ---: |',
    `| **alacarte** after (this run, ${availableParallelism()}-core shared host) | **${now.seqP50.toFixed(0)}** | **${now.burstP50.toFixed(0)}** | **${now.burstP95.toFixed(0)}** |`,
    `| **alacarte** after, pool floor ${BURST} | | **${now.warmBurst.p50.toFixed(0)}** | **${now.warmBurst.p95.toFixed(0)}** |`,
    `| alacarte before (same run) | ${was.seqP50.toFixed(0)} | ${was.burstP50.toFixed(0)} | ${was.burstP95.toFixed(0)} |`,
    '| Daytona ¹ | 186 | 367 | |',
    '| E2B ¹ | 491 | 822 | |',
    '| Vercel ¹ | 671 | 832 | |',
    '| Modal ¹ | 1,700 | 2,300 | |',
    '',
    "¹ ComputeSDK's public sandbox benchmark, May 2026, create → first command (figures as quoted in issue 13; their hosts, not this one).",
  ];
  console.log(out.join('\n'));
}

if (process.env.LOAD_VARIANT) {
  const result = await measure(process.env.LOAD_VARIANT);
  result.warmBurst = await measureWarmBurst(process.env.LOAD_VARIANT);
  console.log(JSON.stringify(result));
} else await main();
