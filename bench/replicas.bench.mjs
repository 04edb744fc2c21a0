#!/usr/bin/env node
// Paid leases per second through `alacarte serve` processes (the built CLI, crun sandboxes, the
// node's own mint, fake Lightning): 1 replica on SQLite (the default), 1 and 3 replicas on one
// PostgreSQL 15 (started here, fsync on), the creates spread round-robin over the replicas by
// CLIENTS concurrent renters, as behind a load balancer. Tokens are prepared before timing; every
// lease is stopped after. Prints one Markdown section.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_OFFER, createLease, EXACT_HOUR, pool, prepareTokens, stopLease } from './lib/paid-node.mjs';
import { postgresUnavailable, startPostgres } from './lib/postgres.mjs';

const LEASES = 48;
const CLIENTS = 6;
const CLI = new URL('../dist/cli/main.js', import.meta.url).pathname;
const OFFER = BENCH_OFFER;
const DENOMINATIONS = EXACT_HOUR;
const body = { offer: 'bench', seconds: 3600, image: 'busybox' };

/** One `alacarte serve` on its own data directory; resolves once it listens. */
async function serve(dataDir, port, config, env) {
  const configFile = join(dataDir, 'bench-config.json');
  writeFileSync(configFile, JSON.stringify(config));
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--port', String(port), '--ssh-port', '0', '--data', dataDir, '--config', configFile],
    { env: { ...process.env, ALACARTE_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stderr.on('data', (b) => {
    if (out.length < 10_000) out += b;
  });
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 60_000);
    const early = () => reject(new Error(`serve exited: ${out}`));
    child.stdout.on('data', (b) => {
      out += b;
      if (/listening on/.test(out)) {
        clearTimeout(timer);
        child.off('exit', early);
        resolve();
      }
    });
    child.once('exit', early);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** `count` replicas on `storeUrl` (undefined: each its own SQLite), keys copied from the first. */
async function startReplicas(count, storeUrl) {
  const ports = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  const config = { publicUrl: `http://127.0.0.1:${ports[0]}`, offers: [OFFER] };
  const env = storeUrl ? { ALACARTE_STORE_URL: storeUrl } : {};
  const dirs = ports.map(() => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-bench-replica-'));
    chmodSync(dir, 0o711);
    return dir;
  });
  const nodes = [await serve(dirs[0], ports[0], config, env)];
  for (const dir of dirs.slice(1))
    for (const file of ['node.key', 'mint.seed']) copyFileSync(join(dirs[0], file), join(dir, file));
  nodes.push(...(await Promise.all(dirs.slice(1).map((dir, i) => serve(dir, ports[i + 1], config, env)))));
  return {
    urls: nodes.map((n) => n.url),
    async close() {
      for (const n of nodes) await n.stop();
      for (const dir of dirs) {
        const runtimeDir = join(dir, 'sandboxes');
        const instance = `a${createHash('sha256').update(runtimeDir).digest('hex').slice(0, 8)}`;
        rmSync(`/run/alacarte-${instance}`, { recursive: true, force: true });
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Paid creates spread over the replicas; leases per second over the wall time of all of them. */
async function measure(label, count, storeUrl) {
  const replicas = await startReplicas(count, storeUrl);
  try {
    const tokens = await prepareTokens(`${replicas.urls[0]}/mint`, LEASES, DENOMINATIONS);
    const t0 = performance.now();
    const created = await pool(tokens, CLIENTS, async (token, i) => {
      const url = replicas.urls[i % count];
      const r = await createLease(url, body, token);
      if (r.status !== 201)
        throw new Error(`${label}: create answered ${r.status} ${JSON.stringify(r.body)}`);
      return { url, lease: r.body, ms: r.ms };
    });
    const seconds = (performance.now() - t0) / 1000;
    // Through the replica holding each sandbox (crun), off the clock.
    await pool(created, CLIENTS, ({ url, lease }) => stopLease(url, lease));
    const sorted = created.map((c) => c.ms).sort((a, b) => a - b);
    return { label, perSecond: LEASES / seconds, p50: sorted[Math.floor(sorted.length / 2)] };
  } finally {
    await replicas.close();
  }
}

const rows = [];
rows.push(await measure('1 replica, SQLite (default)', 1, undefined));
const missing = postgresUnavailable();
let pgServer;
if (!missing) {
  pgServer = await startPostgres();
  try {
    rows.push(await measure('1 replica, PostgreSQL', 1, await pgServer.url()));
    rows.push(await measure('3 replicas, one PostgreSQL', 3, await pgServer.url()));
  } finally {
    await pgServer.stop();
  }
}
const base = rows[0].perSecond;
const lines = [
  '## replicas.bench.mjs',
  '',
  `Paid leases per second (POST /v1/leases with a Cashu token until the crun sandbox answers, 201), ${LEASES} leases by ${CLIENTS} concurrent clients spread round-robin over the replicas; each replica a separate \`alacarte serve\` process, PostgreSQL 15 on the same machine with fsync on. This machine has ${availableParallelism()} cores, shared with other work (load average ${loadavg()[0].toFixed(1)} at the end): the replicas, PostgreSQL and crun compete for the same cores, so 3 replicas here show what they cost, not what 3 machines would give. Ratios are from this one run.`,
  '',
  '| setup | leases/s | × SQLite | p50 per create |',
  '|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.label} | ${r.perSecond.toFixed(1)} | ${(r.perSecond / base).toFixed(2)} | ${r.p50.toFixed(0)} ms |`,
  ),
];
if (missing) lines.push('', `PostgreSQL rows skipped: ${missing}.`);
console.log(lines.join('\n'));
