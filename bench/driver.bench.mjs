#!/usr/bin/env node
// Sandbox driver benchmark (issue 3): start-to-ready against the raw runtime, exec round trip, and
// host memory per idle sandbox with 100 running. Prints a Markdown section. Needs root and crun.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CrunDriver } from '../dist/drivers/crun/crun-driver.js';
import { destroyDir } from '../dist/drivers/crun/layer-pool.js';
import { mountsUnder } from '../dist/drivers/crun/mounts.js';

const ROUNDS = 30;
const EXECS = 40;
const IDLE = 100;
const limits = { vcpu: 0.5, memoryMib: 64, pids: 64, diskMib: 64 };

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};
const ms = (x) => x.toFixed(1);
const run = (file, args) =>
  new Promise((resolve) => {
    const child = spawn(file, args, { stdio: 'ignore' });
    child.on('exit', (code) => resolve(code));
  });
const meminfo = () => {
  const out = {};
  for (const line of readFileSync('/proc/meminfo', 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
};
const leaseId = () => `lse_${randomBytes(8).toString('hex')}`;

const base = mkdtempSync(join(tmpdir(), 'alacarte-driver-bench-'));
chmodSync(base, 0o711);
const instance = `b${randomBytes(5).toString('hex')}`;
const options = {
  runtimeDir: join(base, 'rt'),
  imagesDir: join(base, 'images'),
  stateDir: `/run/alacarte-${instance}`,
  instance,
  warmLayers: 4,
};
const driver = await CrunDriver.create(options);
const started = new Set();
const rawRoot = `/run/alacarte-${instance}-raw`;
const rawBundle = join(base, 'raw');

async function cleanup() {
  for (const id of started) await driver.stop({ leaseId: id }).catch(() => {});
  await driver.close();
  spawnSync('crun', ['--root', rawRoot, 'delete', '--force', 'raw'], { stdio: 'ignore' });
  spawnSync('crun', ['--root', rawRoot, 'delete', '--force', 'floor'], { stdio: 'ignore' });
  for (const p of mountsUnder(base)) await destroyDir(p, '/bin/busybox').catch(() => {});
  if (mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
  rmSync(options.stateDir, { recursive: true, force: true });
  rmSync(rawRoot, { recursive: true, force: true });
  for (const h of readdirSync('/sys/fs/cgroup')) {
    for (const dir of [
      join('/sys/fs/cgroup', h, 'alacarte-bench', instance),
      join('/sys/fs/cgroup', h, 'alacarte', instance),
    ]) {
      try {
        rmdirSync(dir);
      } catch {}
    }
  }
}

try {
  // The raw reference: the very bundle the driver writes, with `true` instead of init, run by crun
  // in the foreground (create, start, wait, delete), on a writable layer of its own.
  const probe = await driver.start(
    { leaseId: leaseId(), image: 'busybox' },
    limits,
    new Date(Date.now() + 600_000),
  );
  started.add(probe.leaseId);
  const config = JSON.parse(readFileSync(join(options.runtimeDir, probe.leaseId, 'config.json'), 'utf8'));
  await driver.stop(probe);
  started.delete(probe.leaseId);
  mkdirSync(join(rawBundle, 'layer'), { recursive: true });
  mkdirSync(join(rawBundle, 'rootfs'));
  mkdirSync(join(rawBundle, 'run/bin'), { recursive: true });
  spawnSync('/bin/busybox', ['mount', '-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', join(rawBundle, 'layer')]);
  mkdirSync(join(rawBundle, 'layer/upper'));
  mkdirSync(join(rawBundle, 'layer/work'));
  spawnSync('/bin/busybox', [
    'mount',
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${join(options.imagesDir, 'busybox')},upperdir=${join(rawBundle, 'layer/upper')},workdir=${join(rawBundle, 'layer/work')}`,
    join(rawBundle, 'rootfs'),
  ]);
  config.root.path = join(rawBundle, 'rootfs');
  config.mounts = config.mounts.map((m) =>
    m.destination === '/run/alacarte' ? { ...m, source: join(rawBundle, 'run') } : m,
  );
  config.process.args = ['/bin/true'];
  config.linux.cgroupsPath = `/alacarte-bench/${instance}/raw`;
  writeFileSync(join(rawBundle, 'config.json'), JSON.stringify(config));

  // The floor for any driver built on the runtime's CLI: `run --detach` of the same bundle with a
  // waiting init, then `exec true` in it.
  const floorConfig = structuredClone(config);
  floorConfig.process.args = ['/run/alacarte/bin/busybox', 'sleep', '600'];
  floorConfig.mounts = floorConfig.mounts.map((m) =>
    m.destination === '/run/alacarte/bin' ? { ...m, source: join(options.runtimeDir, '.lib') } : m,
  );
  floorConfig.linux.cgroupsPath = `/alacarte-bench/${instance}/floor`;
  const floorBundle = join(base, 'floor');
  mkdirSync(floorBundle);
  writeFileSync(join(floorBundle, 'config.json'), JSON.stringify(floorConfig));

  const raw = [];
  const floor = [];
  const ready = [];
  const startOnly = [];
  for (let i = 0; i < ROUNDS + 3; i++) {
    let t = performance.now();
    const code = await run('crun', ['--root', rawRoot, 'run', '--bundle', rawBundle, 'raw']);
    if (code !== 0) throw new Error(`raw crun run exited ${code}`);
    const rawMs = performance.now() - t;

    t = performance.now();
    if ((await run('crun', ['--root', rawRoot, 'run', '--detach', '--bundle', floorBundle, 'floor'])) !== 0) {
      throw new Error('floor crun run --detach failed');
    }
    if ((await run('crun', ['--root', rawRoot, 'exec', 'floor', 'true'])) !== 0)
      throw new Error('floor exec failed');
    const floorMs = performance.now() - t;
    await run('crun', ['--root', rawRoot, 'delete', '--force', 'floor']);

    const id = leaseId();
    started.add(id);
    t = performance.now();
    const h = await driver.start({ leaseId: id, image: 'busybox' }, limits, new Date(Date.now() + 600_000));
    const s = performance.now() - t;
    const r = await driver.exec(h, { command: ['true'], timeoutMs: 10_000, maxOutputBytes: 1024 });
    const readyMs = performance.now() - t;
    if (r.exitCode !== 0) throw new Error(`exec true exited ${r.exitCode}: ${r.stderr}`);
    await driver.stop(h);
    started.delete(id);
    if (i >= 3) {
      raw.push(rawMs);
      floor.push(floorMs);
      ready.push(readyMs);
      startOnly.push(s);
    }
    // Let the warm pool refill, as it does between requests in a service.
    await sleep(60);
  }

  const h = await driver.start(
    { leaseId: leaseId(), image: 'busybox' },
    limits,
    new Date(Date.now() + 600_000),
  );
  started.add(h.leaseId);
  const execs = [];
  for (let i = 0; i < EXECS; i++) {
    const t = performance.now();
    await driver.exec(h, { command: ['true'], timeoutMs: 10_000, maxOutputBytes: 1024 });
    execs.push(performance.now() - t);
  }
  await driver.stop(h);
  started.delete(h.leaseId);

  // Memory: 100 idle sandboxes, host memory they cost beyond what their own cgroups are charged.
  // MemAvailable is machine-wide and other programs move it too, so the cost is estimated four
  // times (two rounds of starting and of stopping 100) and the median reported.
  const estimates = [];
  const kernelDeltas = [];
  let charged = 0;
  for (let round = 0; round < 2; round++) {
    await sleep(500);
    const before = meminfo();
    const ids = [];
    for (let i = 0; i < IDLE; i++) {
      const id = leaseId();
      started.add(id);
      ids.push(id);
      await driver.start({ leaseId: id, image: 'busybox' }, limits, new Date(Date.now() + 600_000));
    }
    await sleep(1500);
    const during = meminfo();
    charged = 0;
    for (const id of ids) {
      const path = existsSync('/sys/fs/cgroup/cgroup.controllers')
        ? join('/sys/fs/cgroup', driver.cgroupPath(id), 'memory.current')
        : join('/sys/fs/cgroup/memory', driver.cgroupPath(id), 'memory.usage_in_bytes');
      charged += Number(readFileSync(path, 'utf8'));
    }
    for (const id of ids) {
      await driver.stop({ leaseId: id });
      started.delete(id);
    }
    await sleep(1500);
    const after = meminfo();
    estimates.push((before.MemAvailable - during.MemAvailable - charged) / IDLE);
    estimates.push((after.MemAvailable - during.MemAvailable - charged) / IDLE);
    kernelDeltas.push({ before, during });
  }
  const sorted = [...estimates].sort((a, b) => a - b);
  const perSandbox = (sorted[1] + sorted[2]) / 2 / 2 ** 20;
  const { before, during } = kernelDeltas[0];
  const kernel = (k) => ((during[k] - before[k]) / IDLE / 2 ** 10).toFixed(0);

  const readyMedian = quantile(ready, 0.5);
  const rawMedian = quantile(raw, 0.5);
  const ratio = readyMedian / rawMedian;
  const lines = [
    '## Sandbox driver (crun)',
    '',
    `${ROUNDS} rounds, busybox image, offer ${JSON.stringify(limits)}, warm layers 4; load average at the end ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} (other programs running distort every time here; compare the rows of one run).`,
    '',
    '| measure | median (ms) | p99 (ms) |',
    '| --- | ---: | ---: |',
    `| raw \`crun run\` of the same bundle doing \`true\` | ${ms(rawMedian)} | ${ms(quantile(raw, 0.99))} |`,
    `| raw \`crun run --detach\` + \`crun exec true\` of the same bundle (the floor of a CLI-driven runtime) | ${ms(quantile(floor, 0.5))} | ${ms(quantile(floor, 0.99))} |`,
    `| driver \`start()\` returns | ${ms(quantile(startOnly, 0.5))} | ${ms(quantile(startOnly, 0.99))} |`,
    `| driver \`start()\` to first \`exec(true)\` answered | ${ms(readyMedian)} | ${ms(quantile(ready, 0.99))} |`,
    `| \`exec(true)\` round trip on a running sandbox | ${ms(quantile(execs, 0.5))} | ${ms(quantile(execs, 0.99))} |`,
    '',
    `- start-to-ready / raw crun run: **${ratio.toFixed(2)}x** (target <= 1.5x): ${ratio <= 1.5 ? 'met' : 'NOT met'}; ` +
      `the floor (run --detach + exec) alone is ${(quantile(floor, 0.5) / rawMedian).toFixed(2)}x, the driver adds ${ms(readyMedian - quantile(floor, 0.5))} ms to it`,
    `- ${IDLE} idle sandboxes (their cgroups are charged ${(charged / 2 ** 20).toFixed(0)} MiB in all; estimates per sandbox, MiB: ${estimates.map((e) => (e / 2 ** 20).toFixed(2)).join(', ')}):`,
    `  host memory outside the tenants' own processes (median of the four): **${perSandbox.toFixed(2)} MiB per sandbox** (target <= 5 MiB): ${perSandbox <= 5 ? 'met' : 'NOT met'}`,
    `  (per sandbox, KiB: Slab ${kernel('Slab')}, KernelStack ${kernel('KernelStack')}, PageTables ${kernel('PageTables')}, Shmem ${kernel('Shmem')}; no per-sandbox host process stays running)`,
  ];
  console.log(lines.join('\n'));
} finally {
  await cleanup();
}
