// Shared by the lease benchmarks: a real node (store, mint, crun sandboxes, HTTP on loopback) in
// this process, ecash of its own mint prepared ahead, and the figures' arithmetic.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { getEncodedToken, Wallet } from '@cashu/cashu-ts';

// The built node to measure: this checkout's dist/, or another build's (ALACARTE_BENCH_DIST, e.g. an
// earlier commit's, so that load.bench.mjs can put both in one run).
const dist = process.env.ALACARTE_BENCH_DIST
  ? pathToFileURL(`${process.env.ALACARTE_BENCH_DIST}/`)
  : new URL('../../dist/', import.meta.url);
const { loadConfig } = await import(new URL('config.js', dist).href);
const { CrunDriver } = await import(new URL('drivers/crun/crun-driver.js', dist).href);
const { AlacarteNode } = await import(new URL('node.js', dist).href);

export { createLease, execIn, pool, stopLease } from './renter.mjs';

/** 3600 sat an hour: an hour is paid with exactly the proofs of EXACT_HOUR (no change). */
const HOURLY = { price: { amount_per_hour: 3600, unit: 'sat' }, min_seconds: 1, max_seconds: 86_400 };
/** The proofs that pay one hour of BENCH_OFFER or TINY_OFFER exactly. */
export const EXACT_HOUR = [2048, 1024, 512, 16];
/** A small sandbox: 80 fit the default overcommit of a 2-core host (4 vCPU per core). */
export const BENCH_OFFER = { id: 'bench', vcpu: 0.1, memory_mib: 128, pids: 128, disk_mib: 64, ...HOURLY };
/** 0.01 vCPU, 16 MiB: a hundred and more fit a 2-core host. */
export const TINY_OFFER = { id: 'tiny', vcpu: 0.01, memory_mib: 16, pids: 32, disk_mib: 1, ...HOURLY };

/** Starts a node with `config` (config-file keys) in a fresh data directory; close() removes it all. */
export async function startPaidNode(config = {}, driverOptions = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'alacarte-bench-'));
  // mkdtemp makes it 0700; the sandboxes' unprivileged ids must traverse it, as the node arranges.
  chmodSync(dataDir, 0o711);
  // SSH on a free port: 2222 may be taken on a shared host, and no benchmark uses it.
  const cfg = loadConfig({ flags: { port: 0, dataDir, logLevel: 'silent', ssh: { port: 0 }, ...config } });
  // The runtime's state on a tmpfs of our own, so that nothing of this run stays in /run.
  const stateDir = mkdtempSync('/run/alacarte-bench-');
  const driver = await CrunDriver.create({
    runtimeDir: join(dataDir, 'sandboxes'),
    imagesDir: join(dataDir, 'images'),
    stateDir,
    ...driverOptions,
  });
  const node = await AlacarteNode.create(cfg, { driver, images: ['busybox'] });
  const { url, mintUrl } = await node.listen();
  let closed = false;
  return {
    node,
    driver,
    url,
    mintUrl,
    dataDir,
    stateDir,
    async close() {
      if (closed) return;
      closed = true;
      // Leave no sandbox behind, whatever happened.
      for (const s of await driver.list()) await driver.stop(s).catch(() => {});
      await node.close();
      await driver.close();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * `count` tokens of the node's mint, each made of exactly the proofs `denominations` (so a token
 * pays an exact price and the node gives no change). Minted through the fake Lightning backend in
 * a few large batches, before anything is timed.
 */
export async function prepareTokens(mintUrl, count, denominations, maxOutputs = 800) {
  const wallet = new Wallet(mintUrl, { unit: 'sat' });
  await wallet.loadMint();
  const perToken = denominations.reduce((a, b) => a + b, 0);
  const tokensPerBatch = Math.max(1, Math.floor(maxOutputs / denominations.length));
  const tokens = [];
  while (tokens.length < count) {
    const n = Math.min(tokensPerBatch, count - tokens.length);
    const outputs = Array.from({ length: n }, () => denominations).flat();
    // A loaded host can reset a kept-alive connection between two requests: try a batch again.
    let proofs;
    for (let attempt = 1; proofs === undefined; attempt++) {
      try {
        const quote = await wallet.createMintQuoteBolt11(perToken * n);
        proofs = await wallet.mintProofsBolt11(perToken * n, quote.quote, undefined, {
          type: 'random',
          denominations: outputs,
        });
      } catch (e) {
        if (attempt >= 3) throw e;
      }
    }
    const byAmount = new Map();
    for (const p of proofs) {
      const a = Number(p.amount.toBigInt());
      if (!byAmount.has(a)) byAmount.set(a, []);
      byAmount.get(a).push(p);
    }
    for (let i = 0; i < n; i++) {
      const send = denominations.map((d) => {
        const p = byAmount.get(d)?.pop();
        if (!p) throw new Error(`the mint returned no proof of ${d}`);
        return p;
      });
      tokens.push(getEncodedToken({ mint: mintUrl, proofs: send, unit: 'sat' }));
    }
  }
  return tokens;
}

/**
 * The payment rail a node's lease service redeems through (to time or stamp its calls): the
 * service's own field in older builds, its creations' since the service became a façade.
 */
export function leaseRail(service) {
  return service.rail ?? service.creations.rail;
}

/** Nearest-rank percentile of a list of numbers (p in 0..100). */
export function percentile(values, p) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

export function ms(value) {
  return Number.isFinite(value) ? `${value.toFixed(1)} ms` : 'n/a';
}

/** Runs a program to its end with no stdio; resolves with exit code, stderr and milliseconds. */
export function timeProgram(file, args) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b) => {
      stderr += b;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr, ms: performance.now() - t0 }));
  });
}
