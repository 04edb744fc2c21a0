#!/usr/bin/env node
// One sandbox's exec alone, driver-level (no HTTP): `node bench/exec-path.mjs <dist> [vcpu]` runs 40
// `exec true` one after another, 150 ms apart (as a fresh lease's first command finds its sandbox
// idle), and prints the p10/p50/p90 and the CPU charged to the sandbox's cgroup per exec (cgroup v1
// cpuacct). Compare builds back to back, e.g. main's dist and this checkout's (issue 13, the exec agent).
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = resolve(process.argv[2] ?? 'dist');
const vcpu = Number(process.argv[3] ?? 0.01);
const { CrunDriver } = await import(pathToFileURL(join(dist, 'drivers/crun/crun-driver.js')).href);
const base = mkdtempSync(join(tmpdir(), 'alacarte-exec-path-'));
chmodSync(base, 0o711);
const instance = `b${randomBytes(4).toString('hex')}`;
const driver = await CrunDriver.create({
  runtimeDir: join(base, 'rt'),
  imagesDir: join(base, 'img'),
  stateDir: `/run/alacarte-${instance}`,
  instance,
  warmLayers: 1,
});
const leaseId = `lse_${randomBytes(8).toString('hex')}`;
const h = await driver.start(
  { leaseId, image: 'busybox' },
  { vcpu, memoryMib: 16, pids: 64, diskMib: 1 },
  new Date(Date.now() + 300_000),
);
const name = readlinkSync(join(base, 'rt', leaseId));
const usage = `/sys/fs/cgroup/cpuacct/alacarte/${instance}/${name}/cpuacct.usage`;
const cpu = () => {
  try {
    return Number(readFileSync(usage, 'utf8'));
  } catch {
    return Number.NaN;
  }
};
const cpu0 = cpu();
const times = [];
for (let i = 0; i < 40; i++) {
  await new Promise((r) => setTimeout(r, 150));
  const t0 = performance.now();
  const r = await driver.exec(h, { command: ['true'], timeoutMs: 10_000, maxOutputBytes: 1024 });
  times.push(performance.now() - t0);
  if (r.exitCode !== 0) throw new Error(`exec true exited ${r.exitCode}`);
}
const inCgroupUs = (cpu() - cpu0) / 40 / 1000;
times.sort((a, b) => a - b);
const f = (i) => `${times[i].toFixed(1)} ms`;
console.log(
  `${dist} vcpu ${vcpu}: p10 ${f(4)} p50 ${f(20)} p90 ${f(36)}, in the sandbox's cgroup ${inCgroupUs.toFixed(0)} µs/exec`,
);
await driver.stop(h);
await driver.close();
rmSync(base, { recursive: true, force: true });
