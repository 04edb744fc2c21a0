#!/usr/bin/env node
// Many idle sandboxes (issue 13): up to 1,000 paid leases of a tiny offer on one node, then the host
// memory each costs outside the tenants' own processes, the node's RSS, and GET /v1/offers while
// they all run. Prints one Markdown section; `node bench/run.mjs idle` runs only this.
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createLease,
  ms,
  percentile,
  pool,
  prepareTokens,
  startPaidNode,
  stopLease,
} from './lib/paid-node.mjs';

const WANTED = 1000;
/** Creation stops here on a slow (shared) host: the figures are then for as many as were made. */
const CREATE_BUDGET_MS = 300_000;
const OFFER_GETS = 300;
// 1 sat an hour: a prepared 1-sat token pays any length up to an hour exactly.
const IDLE_OFFER = {
  id: 'idle',
  vcpu: 0.01,
  memory_mib: 16,
  pids: 16,
  disk_mib: 1,
  price: { amount_per_hour: 1, unit: 'sat' },
  min_seconds: 1,
  max_seconds: 3600,
};
const body = { offer: 'idle', seconds: 3600, image: 'busybox' };

const meminfo = () => {
  const out = {};
  for (const line of readFileSync('/proc/meminfo', 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
};

/** Memory the sandboxes' own cgroups are charged (their processes, their tmpfs pages), and how many there are. */
function charged(instance) {
  const v1 = join('/sys/fs/cgroup/memory/alacarte', instance);
  const v2 = join('/sys/fs/cgroup/alacarte', instance);
  let bytes = 0;
  let count = 0;
  for (const [dir, file] of [
    [v1, 'memory.usage_in_bytes'],
    [v2, 'memory.current'],
  ]) {
    let names = [];
    try {
      names = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory());
    } catch {
      continue;
    }
    for (const e of names) {
      try {
        bytes += Number(readFileSync(join(dir, e.name, file), 'utf8'));
        count++;
      } catch {
        // removed meanwhile
      }
    }
  }
  return { bytes, count };
}

async function offerTimes(url, n) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await fetch(`${url}/v1/offers`);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET /v1/offers answered ${res.status}`);
    times.push(performance.now() - t0);
  }
  return times;
}

async function main() {
  // 1,000 × 0.01 vCPU is 10 vCPUs: the operator sells up to 8 per core here (default 4).
  const t = await startPaidNode({ offers: [IDLE_OFFER] }, { overcommit: { cpuRatio: 8 } });
  try {
    const tokens = await prepareTokens(t.mintUrl, WANTED, [1]);
    const idleOffers = await offerTimes(t.url, OFFER_GETS);
    await sleep(1000);
    const before = meminfo();
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    let refused = 0;
    /** Why creates were refused: `status error` -> how many. */
    const reasons = new Map();
    const leases = (
      await pool(tokens, 8, async (token) => {
        if (performance.now() - t0 > CREATE_BUDGET_MS) return undefined;
        const r = await createLease(t.url, body, token);
        if (r.status !== 201) {
          refused++;
          const why = `${r.status} ${r.body?.error ?? ''} ${r.body?.message ?? ''}`.trim();
          reasons.set(why, (reasons.get(why) ?? 0) + 1);
          return undefined;
        }
        return r.body;
      })
    ).filter(Boolean);
    const createSeconds = (performance.now() - t0) / 1000;
    await sleep(3000);
    const during = meminfo();
    const cg = charged(t.driver.instance);
    const rssDuring = process.memoryUsage().rss;
    const busyOffers = await offerTimes(t.url, OFFER_GETS);
    const counts = await t.node.leases.countByState();
    // Sandboxes on the host: the leases' and those made ahead, waiting (each is a whole sandbox).
    const sandboxes = cg.count;
    const perSandbox = (before.MemAvailable - during.MemAvailable - cg.bytes) / sandboxes;
    const kernel = (k) => ((during[k] - before[k]) / sandboxes / 2 ** 10).toFixed(0);
    // The kernel's own share, less disturbed by other programs than MemAvailable: slab (dentries,
    // inodes, namespaces, cgroups), page tables, kernel stacks, shared memory.
    const kernelBytes =
      ['Slab', 'PageTables', 'KernelStack', 'Shmem'].reduce((n, k) => n + (during[k] - before[k]), 0) /
      sandboxes;
    const hostPer = Math.max(perSandbox, kernelBytes);
    await pool(leases, 8, (l) => stopLease(t.url, l));
    await sleep(1000);
    const p99 = percentile(busyOffers, 99);
    const out = [
      '## Many idle sandboxes (issue 13)',
      '',
      `Paid leases of a tiny offer (0.01 vCPU, 16 MiB, 1 MiB disk, busybox, no command: init waiting) created by 8 clients on loopback, ` +
        `up to ${WANTED} or ${CREATE_BUDGET_MS / 1000} s of creating; CPU overcommit set to 8 vCPUs per core so that ${WANTED} × 0.01 fit the ${availableParallelism()} cores. ` +
        `Host memory per sandbox = the drop of MemAvailable, less what the sandboxes' own cgroups are charged, divided by the sandboxes on the host ` +
        `(the leases' and those made ahead, waiting). MemAvailable is machine-wide and other programs on this shared host move it: an estimate. ` +
        `Load average at the end ${loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')}.`,
      '',
      '| measure | value |',
      '| --- | --- |',
      `| leases running / refused / sandboxes on the host (incl. made ahead) | ${counts.running ?? leases.length} / ${refused} / ${sandboxes} |`,
      `| time to create them (8 clients) | ${createSeconds.toFixed(1)} s (${(leases.length / createSeconds).toFixed(1)} leases/s) |`,
      `| their cgroups are charged, in all | ${(cg.bytes / 2 ** 20).toFixed(0)} MiB |`,
      `| host memory per sandbox outside the tenants' processes, from MemAvailable | ${(perSandbox / 2 ** 20).toFixed(2)} MiB |`,
      `| … from the kernel's counters (Slab ${kernel('Slab')} KiB, PageTables ${kernel('PageTables')} KiB, KernelStack ${kernel('KernelStack')} KiB, Shmem ${kernel('Shmem')} KiB) | ${(kernelBytes / 2 ** 20).toFixed(2)} MiB |`,
      `| node RSS (this process: node, mint, clients) before / with them all running | ${(rssBefore / 2 ** 20).toFixed(0)} / ${(rssDuring / 2 ** 20).toFixed(0)} MiB |`,
      `| \`GET /v1/offers\` p50 / p99, no lease running | ${ms(percentile(idleOffers, 50))} / ${ms(percentile(idleOffers, 99))} |`,
      `| \`GET /v1/offers\` p50 / p99, all of them running | ${ms(percentile(busyOffers, 50))} / ${ms(p99)} |`,
      '',
      `- Target ${WANTED} idle sandboxes: ${leases.length}${leases.length < WANTED ? ` (only these were made within ${CREATE_BUDGET_MS / 1000} s on this shared host, or refused: ${refused}${refused > 0 ? `, ${[...reasons].map(([why, n]) => `${n}× ${why}`).join(', ')}` : ''})` : ''}: ${leases.length >= WANTED ? 'MET' : 'NOT MET'}`,
      `- Target host memory per sandbox ≤ 5 MiB: ${(hostPer / 2 ** 20).toFixed(2)} MiB (the larger estimate): ${hostPer <= 5 * 2 ** 20 ? 'MET' : 'NOT MET'}`,
      `- Target \`GET /v1/offers\` p99 ≤ 50 ms while they run: ${ms(p99)}: ${p99 <= 50 ? 'MET' : 'NOT MET'}`,
    ];
    console.log(out.join('\n'));
  } finally {
    await t.close();
  }
}

await main();
