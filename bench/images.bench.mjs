#!/usr/bin/env node
// Images benchmark (issue 10): start-to-first-exec of a lease on `debian` beside `busybox`, with
// sandboxes made ahead (the pool, as a running node has them) and without (the first start of an
// image, or a pool drained by a burst). Prints a Markdown section. Needs root, crun and mmdebstrap;
// the debian image is built once into the same cache the tests use.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CrunDriver } from '../dist/drivers/crun/crun-driver.js';
import { debianRecipe, ensureDebianImage } from '../dist/drivers/crun/debian-image.js';
import { ImageStore } from '../dist/drivers/crun/image-store.js';
import { destroyDir } from '../dist/drivers/crun/layer-pool.js';
import { mountsUnder } from '../dist/drivers/crun/mounts.js';

const ROUNDS = 20;
const IMAGES = ['busybox', 'debian'];
const limits = { vcpu: 0.5, memoryMib: 256, pids: 128, diskMib: 64 };

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};
const ms = (x) => x.toFixed(1);
const leaseId = () => `lse_${randomBytes(8).toString('hex')}`;

const imagesDir = join('/var/tmp', `alacarte-test-images-${debianRecipe()}`);
mkdirSync(imagesDir, { recursive: true, mode: 0o755 });
await ensureDebianImage(new ImageStore(imagesDir, join(imagesDir, '.no-sandboxes')), {
  idBase: 1_000_000,
  progress: (line) => console.error(line),
});

const base = mkdtempSync(join(tmpdir(), 'alacarte-images-bench-'));
chmodSync(base, 0o711);
const drivers = [];

async function makeDriver(warmLayers) {
  const instance = `b${randomBytes(5).toString('hex')}`;
  const options = {
    runtimeDir: join(base, `rt-${instance}`),
    imagesDir,
    stateDir: `/run/alacarte-${instance}`,
    instance,
    warmLayers,
  };
  const driver = await CrunDriver.create(options);
  drivers.push({ driver, options, started: new Set() });
  return drivers.at(-1);
}

async function cleanup() {
  for (const { driver, options, started } of drivers) {
    for (const id of started) await driver.stop({ leaseId: id }).catch(() => {});
    await driver.close();
    rmSync(options.stateDir, { recursive: true, force: true });
    for (const h of readdirSync('/sys/fs/cgroup')) {
      try {
        rmdirSync(join('/sys/fs/cgroup', h, 'alacarte', options.instance));
      } catch {}
    }
  }
  for (const p of mountsUnder(base)) await destroyDir(p, '/bin/busybox').catch(() => {});
  if (mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
}

/** start() to the first exec answered, per image, alternating images round by round. */
async function measure(d, pause, command = ['true'], images = IMAGES) {
  const out = Object.fromEntries(images.map((i) => [i, []]));
  for (let i = 0; i < ROUNDS + 2; i++) {
    for (const image of images) {
      const id = leaseId();
      d.started.add(id);
      const t = performance.now();
      const h = await d.driver.start({ leaseId: id, image }, limits, new Date(Date.now() + 600_000));
      const r = await d.driver.exec(h, { command, timeoutMs: 30_000, maxOutputBytes: 4096 });
      const elapsed = performance.now() - t;
      if (r.exitCode !== 0)
        throw new Error(`${image}: ${command.join(' ')} exited ${r.exitCode}: ${r.stderr}`);
      await d.driver.stop(h);
      d.started.delete(id);
      if (i >= 2) out[image].push(elapsed);
      // Let the pool refill, as it does between requests in a service.
      await sleep(pause);
    }
  }
  return out;
}

try {
  const warm = await makeDriver(2);
  for (const image of IMAGES) warm.driver.prewarm(image, limits.diskMib);
  await sleep(3000);
  const pooled = await measure(warm, 400);
  const cold = await measure(await makeDriver(0), 50);
  const python = await measure(warm, 400, ['python3', '-c', 'pass'], ['debian']);
  const du = spawnSync('du', ['-sm', '--apparent-size', join(imagesDir, 'debian')], { encoding: 'utf8' });
  const row = (label, set, image) =>
    `| ${label} | ${image} | ${ms(quantile(set[image], 0.5))} | ${ms(quantile(set[image], 0.99))} |`;
  const ratio = (set) => quantile(set.debian, 0.5) / quantile(set.busybox, 0.5);
  const lines = [
    '## Images: start-to-first-exec on debian beside busybox',
    '',
    `${ROUNDS} rounds per image, offer ${JSON.stringify(limits)}; debian image ${du.stdout.split('\t')[0]} MiB` +
      ` (shared read-only, the lower layer of every sandbox's overlay); load average at the end ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}.`,
    '',
    '| measure | image | median (ms) | p99 (ms) |',
    '| --- | --- | ---: | ---: |',
    row('`start()` to first `exec(true)`, sandboxes made ahead', pooled, 'busybox'),
    row('`start()` to first `exec(true)`, sandboxes made ahead', pooled, 'debian'),
    row('`start()` to first `exec(true)`, nothing made ahead (mount, crun create + start)', cold, 'busybox'),
    row('`start()` to first `exec(true)`, nothing made ahead (mount, crun create + start)', cold, 'debian'),
    row('`start()` to `python3 -c pass` answered, made ahead', python, 'debian'),
    '',
    `- debian / busybox, made ahead: **${ratio(pooled).toFixed(2)}x** (target <= 1.5x): ${ratio(pooled) <= 1.5 ? 'met' : 'NOT met'}; ` +
      `nothing made ahead: **${ratio(cold).toFixed(2)}x** (${ratio(cold) <= 1.5 ? 'met' : 'NOT met'})`,
  ];
  console.log(lines.join('\n'));
} finally {
  await cleanup();
}
