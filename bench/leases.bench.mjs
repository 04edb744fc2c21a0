#!/usr/bin/env node
// Paid leases on a real node (store, in-process mint, crun sandboxes, HTTP on loopback), paid with
// cashu-ts tokens of the node's own mint prepared beforehand:
//  1. a paid POST /v1/leases until the sandbox answers (201; and 201 + one exec), beside the raw
//     `crun run` of the same busybox image doing `true`, interleaved so both see the same load;
//  2. leases created per second with 1 and with 8 concurrent clients;
//  3. the reaper's lateness when 200 leases expire together (aimed at one second).
// Prints one Markdown section; figures are printed whether or not the targets are met.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import SQLite from 'better-sqlite3';
// Imported before the built code binds child_process.spawn, so that the node's children are timed.
import { childTimes, resetChildTimes } from './lib/child-timing.mjs';
import {
  BENCH_OFFER,
  createLease,
  EXACT_HOUR,
  execIn,
  leaseRail,
  ms,
  percentile,
  pool,
  prepareTokens,
  startPaidNode,
  stopLease,
  timeProgram,
} from './lib/paid-node.mjs';

const SEQUENTIAL = 40;
const THROUGHPUT = 60;
const CLIENTS = 8;
const EXPIRING = 200;
const LATE_MS = 1000;

const BENCH_DENOMINATIONS = EXACT_HOUR;
// The reaper case: 1 sat for anything up to an hour, so a prepared 1-sat token pays any length exactly.
const REAPER_OFFER = {
  id: 'tiny',
  vcpu: 0.01,
  memory_mib: 16,
  pids: 16,
  disk_mib: 1,
  price: { amount_per_hour: 1, unit: 'sat' },
  min_seconds: 1,
  max_seconds: 3600,
};
const benchBody = { offer: 'bench', seconds: 3600, image: 'busybox' };

/** Wraps obj[name] so each call's duration lands in `into`. */
function timeCalls(obj, name, into) {
  const original = obj[name].bind(obj);
  obj[name] = async (...args) => {
    const t0 = performance.now();
    try {
      return await original(...args);
    } finally {
      into.push(performance.now() - t0);
    }
  };
  return () => {
    obj[name] = original;
  };
}

/** A minimal OCI bundle running /bin/true from the node's busybox image, as crun would write it. */
async function rawBundle(imageDir, idBase) {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-bench-raw-'));
  const spec = await timeProgram('crun', ['spec', '--rootless', '--bundle', dir]);
  if (spec.code !== 0) throw new Error(`crun spec failed: ${spec.stderr}`);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config.process.terminal = false;
  config.process.args = ['/bin/true'];
  config.root = { path: imageDir, readonly: true };
  // The image is owned by the driver's id range (root inside = idBase), as in a sandbox.
  const mapping = [{ containerID: 0, hostID: idBase, size: 65_536 }];
  config.linux.uidMappings = mapping;
  config.linux.gidMappings = mapping;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const state = join(dir, 'state');
  mkdirSync(state, { mode: 0o700 });
  return { dir, state };
}

async function rawCrunRun(bundle, i) {
  const r = await timeProgram('crun', ['--root', bundle.state, 'run', '--bundle', bundle.dir, `raw-${i}`]);
  if (r.code !== 0) throw new Error(`crun run exited ${r.code}: ${r.stderr.trim()}`);
  return r.ms;
}

/** What one durable commit costs on this disk: WAL with synchronous=FULL, as the store runs. */
function commitCost(dir, n = 40) {
  const db = new SQLite(join(dir, 'fsync-probe.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (v INTEGER)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    insert.run(i);
    times.push(performance.now() - t0);
  }
  db.close();
  return percentile(times, 50);
}

function expectCreated(result) {
  if (result.status !== 201) {
    throw new Error(
      `POST /v1/leases answered ${result.status}: ${JSON.stringify(result.body).slice(0, 300)}`,
    );
  }
  if (result.body.change !== null) throw new Error('the bench token was meant to pay exactly, got change');
  return result.body;
}

async function stopAll(url, leases) {
  await pool(leases, 4, (l) => stopLease(url, l));
}

async function sequentialCase(t, tokens, bundle) {
  const profile = { create: [], redeem: [], start: [] };
  const service = t.node.leases;
  const restore = [
    timeCalls(service, 'create', profile.create),
    timeCalls(leaseRail(service), 'redeem', profile.redeem),
    timeCalls(t.driver, 'start', profile.start),
  ];
  // Warm-up, not counted: first spawns, JIT, the warm layer pool of this size filled.
  for (let i = 0; i < 2; i++) await rawCrunRun(bundle, `w${i}`);
  const warm = await expectCreated(await createLease(t.url, benchBody, tokens.pop()));
  await execIn(t.url, warm, ['true']);
  await stopLease(t.url, warm);
  for (const list of Object.values(profile)) list.length = 0;
  resetChildTimes();
  await new Promise((r) => setTimeout(r, 300));

  const raw = [];
  const to201 = [];
  const toExec = [];
  const leases = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    raw.push(await rawCrunRun(bundle, i));
    const created = await createLease(t.url, benchBody, tokens.pop());
    const lease = await expectCreated(created);
    await execIn(t.url, lease, ['true']);
    toExec.push(performance.now() - created.t0);
    to201.push(created.ms);
    leases.push(lease);
    // Let the warm layer pool refill as it would between real requests.
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const r of restore) r();
  const children = new Map([...childTimes].map(([k, v]) => [k, { spawn: [...v.spawn], exit: [...v.exit] }]));
  await stopAll(t.url, leases);
  return { raw, to201, toExec, profile, children };
}

async function throughputCase(t, tokens, clients) {
  const mine = tokens.splice(-THROUGHPUT);
  const t0 = performance.now();
  const leases = await pool(mine, clients, async (token) =>
    expectCreated(await createLease(t.url, benchBody, token)),
  );
  const seconds = (performance.now() - t0) / 1000;
  await stopAll(t.url, leases);
  return THROUGHPUT / seconds;
}

async function reaperCase(t, tokens, perSecond) {
  // Aim every deadline at the same whole second, far enough ahead for all to be created first.
  const expectedMs = (EXPIRING / perSecond) * 1000;
  const target = Date.now() + Math.ceil(expectedMs * 1.6) + 5000;
  const leases = await pool(tokens.splice(-EXPIRING), CLIENTS, async (token) => {
    const seconds = Math.max(1, Math.round((target - Date.now()) / 1000));
    return expectCreated(await createLease(t.url, { offer: 'tiny', seconds, image: 'busybox' }, token));
  });
  const ids = leases.map((l) => l.id);
  // Each reaper pass (state changes only, where the node has that step on its own), timed.
  const passes = [];
  // The reaper's passes live in the lease service's reconciler (src/leases/reconciler.ts).
  const service = t.node.leases.reconciler ?? t.node.leases;
  const passFn = typeof service.expireDue === 'function' ? 'expireDue' : 'reapExpired';
  const original = service[passFn].bind(service);
  service[passFn] = async (...args) => {
    const t0 = performance.now();
    const result = await original(...args);
    const n = Array.isArray(result) ? result.length : result;
    if (n > 0) passes.push({ ms: performance.now() - t0, n });
    return result;
  };
  const rows = await t.node.db
    .selectFrom('leases')
    .select(['id', 'expires_at'])
    .where('id', 'in', ids)
    .execute();
  const deadline = new Map(rows.map((r) => [r.id, Number(r.expires_at)]));
  const deadlines = [...deadline.values()];
  const first = Math.min(...deadlines);
  const last = Math.max(...deadlines);
  const createdLate = Date.now() > first;

  // How late the node's own event loop runs timers (the reaper's included) while they expire.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const result = await new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./lib/expiry-watch.mjs', import.meta.url), {
      workerData: {
        dbPath: join(t.dataDir, 'alacarte.sqlite'),
        runtimeDir: join(t.dataDir, 'sandboxes'),
        ids,
        pollMs: 5,
        timeoutAt: last + 60_000,
      },
    });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  loopDelay.disable();
  service[passFn] = original;
  const lateness = [];
  const recorded = [];
  let expired = 0;
  for (const [id, seen] of result.ended) {
    lateness.push(seen.seenAt - deadline.get(id));
    recorded.push(seen.endedAt - deadline.get(id));
    if (seen.state === 'expired') expired++;
  }
  const removal = result.removed.map(([id, at]) => at - deadline.get(id));
  return {
    spreadMs: last - first,
    createdLate,
    ended: result.ended.length,
    expired,
    timedOut: result.timedOut,
    lateness,
    recorded,
    removal,
    passes,
    passFn,
    loopDelayMaxMs: loopDelay.max / 1e6,
  };
}

/** Rows for the child processes started during the paid sequence: the runtime's own share. */
function childRows(children) {
  const rows = [];
  const detach = children.get('crun run --detach');
  if (detach) {
    rows.push(
      `| ↳ of which the \`crun run --detach\` process, spawn to exit | ${ms(percentile(detach.exit, 50))} | ${ms(percentile(detach.exit, 99))} | ${detach.exit.length} |`,
    );
  }
  const all = [...children.values()].flatMap((c) => c.spawn);
  rows.push(
    `| spawn() holding the node's thread (fork + exec), any child | ${ms(percentile(all, 50))} | ${ms(percentile(all, 99))} | ${all.length} |`,
  );
  return rows;
}

async function main() {
  const loadBefore = loadavg()[0];
  const t = await startPaidNode({ offers: [BENCH_OFFER, REAPER_OFFER] });
  let bundle;
  try {
    bundle = await rawBundle(join(t.dataDir, 'images', 'busybox'), 1_000_000);
    const benchTokens = await prepareTokens(t.mintUrl, 1 + SEQUENTIAL + 2 * THROUGHPUT, BENCH_DENOMINATIONS);
    const tinyTokens = await prepareTokens(t.mintUrl, EXPIRING, [1]);
    const fsyncMs = commitCost(bundle.dir);

    const seq = await sequentialCase(t, benchTokens, bundle);
    const one = await throughputCase(t, benchTokens, 1);
    const eight = await throughputCase(t, benchTokens, CLIENTS);
    const reap = await reaperCase(t, tinyTokens, eight);

    const rawP50 = percentile(seq.raw, 50);
    const leaseP50 = percentile(seq.to201, 50);
    const ratio = leaseP50 / rawP50;
    const late = reap.lateness.filter((l) => l > LATE_MS).length + (EXPIRING - reap.ended);
    const p = (list, q) => ms(percentile(list, q));
    const out = [
      "## Paid leases (crun sandboxes, cashu tokens of the node's own mint)",
      '',
      `Real node in-process (SQLite WAL synchronous=FULL, in-process mint, crun driver), HTTP on loopback. ` +
        `Paid requests carry a token prepared beforehand that pays the exact price (4 proofs, no change). ` +
        `Raw crun = \`crun run\` of a minimal OCI bundle (\`crun spec --rootless\`, user namespace, root = the node's busybox image) doing \`/bin/true\`, end to end; ` +
        `it alternates with the paid requests so both see the same machine load. ` +
        `Reaper: ${EXPIRING} leases created by ${CLIENTS} clients with lengths aimed at one deadline (whole seconds, so the deadlines spread over about a second); ` +
        `a worker thread with its own store connection notes when each leaves \`running\` and when its sandbox directory is gone.`,
      '',
      `Machine load (1-min average, ${availableParallelism()} cores) at start ${loadBefore.toFixed(1)}, at end ${loadavg()[0].toFixed(1)}: other work on the host shifts these figures.`,
      '',
      '| measure | p50 | p99 | n |',
      '| --- | --- | --- | --- |',
      `| raw \`crun run\` busybox \`true\` | ${p(seq.raw, 50)} | ${p(seq.raw, 99)} | ${seq.raw.length} |`,
      `| paid \`POST /v1/leases\` → 201 (sandbox answers exec) | ${p(seq.to201, 50)} | ${p(seq.to201, 99)} | ${seq.to201.length} |`,
      `| paid \`POST /v1/leases\` → 201 + one \`exec true\` | ${p(seq.toExec, 50)} | ${p(seq.toExec, 99)} | ${seq.toExec.length} |`,
      `| ↳ in the node: lease service create | ${p(seq.profile.create, 50)} | ${p(seq.profile.create, 99)} | ${seq.profile.create.length} |`,
      `| ↳ redeem (read token, admit: replay check + capacity, verify proofs + store transaction) | ${p(seq.profile.redeem, 50)} | ${p(seq.profile.redeem, 99)} | ${seq.profile.redeem.length} |`,
      `| ↳ driver start (crun run --detach + files) | ${p(seq.profile.start, 50)} | ${p(seq.profile.start, 99)} | ${seq.profile.start.length} |`,
      ...childRows(seq.children),
      `| one SQLite commit (WAL, synchronous=FULL) on this disk | ${ms(fsyncMs)} | | 40 |`,
      '',
      '| throughput | leases/s |',
      '| --- | --- |',
      `| 1 client, ${THROUGHPUT} leases | ${one.toFixed(1)} |`,
      `| ${CLIENTS} concurrent clients, ${THROUGHPUT} leases | ${eight.toFixed(1)} |`,
      '',
      `| reaper, ${EXPIRING} leases expiring together | value |`,
      '| --- | --- |',
      `| spread of their deadlines | ${ms(reap.spreadMs)}${reap.createdLate ? ' (creation overran the first deadline)' : ''} |`,
      `| ended / of which expired | ${reap.ended} / ${reap.expired}${reap.timedOut ? ' (watch timed out)' : ''} |`,
      `| lateness (state left running, seen in the store) p50 / p99 / max | ${p(reap.lateness, 50)} / ${p(reap.lateness, 99)} / ${ms(Math.max(...reap.lateness))} |`,
      `| ended_at − expires_at as recorded, max | ${ms(Math.max(...reap.recorded))} |`,
      `| sandbox removed after its deadline p50 / max | ${p(reap.removal, 50)} / ${ms(Math.max(...reap.removal))} |`,
      `| reaper passes that ended leases (\`${reap.passFn}\`): count / leases in the largest / longest | ${reap.passes.length} / ${Math.max(0, ...reap.passes.map((x) => x.n))} / ${ms(Math.max(0, ...reap.passes.map((x) => x.ms)))} |`,
      `| node event-loop delay while they expire, max | ${ms(reap.loopDelayMaxMs)} |`,
      `| leases reaped later than 1 s | ${late} |`,
      '',
      `- Target paid lease p50 ≤ 2× raw crun start: ${ms(leaseP50)} vs 2 × ${ms(rawP50)} (ratio ${ratio.toFixed(2)}): ${ratio <= 2 ? 'MET' : 'NOT MET'}`,
      `- Target zero leases reaped later than 1 s: ${late} late (max ${ms(Math.max(...reap.lateness))}): ${late === 0 ? 'MET' : 'NOT MET'}`,
    ];
    console.log(out.join('\n'));
  } finally {
    await t.close();
    if (bundle) rmSync(bundle.dir, { recursive: true, force: true });
  }
}

await main();
