#!/usr/bin/env node
// The CPU of one crun sandbox's whole life outside the node's own work (issue 13): driver-level, no
// HTTP, no pool ahead (warmLayers 0), so each start makes its sandbox on its path (layer mounts,
// bundle, `crun create`, start, first exec) and each stop removes it (runtime delete, unmounts, rm).
// `node bench/sandbox-life.mjs [dist] [cycles]` runs the cycles one after another and prints, per
// sandbox life, the wall time of start and stop and the CPU of: this process, the programs it ran
// (through the spawner shell or not), the sandboxes' cgroups, the kernel's workers (namespace and
// mount clean-up run there), and the whole machine (shared: read it as an upper bound).
// Not a *.bench.mjs: `npm run bench` does not run it. Compare builds back to back in the same minute.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = resolve(process.argv[2] ?? 'dist');
const cycles = Number(process.argv[3] ?? 30);
const { CrunDriver } = await import(pathToFileURL(join(dist, 'drivers/crun/crun-driver.js')).href);
const base = mkdtempSync(join(tmpdir(), 'alacarte-life-'));
chmodSync(base, 0o711);
const instance = `l${randomBytes(4).toString('hex')}`;
const driver = await CrunDriver.create({
  runtimeDir: join(base, 'rt'),
  imagesDir: join(base, 'img'),
  stateDir: `/run/alacarte-${instance}`,
  instance,
  warmLayers: 0,
});
const HZ = 100;

/** utime + stime (+ children's) of a process, in ms. */
function ticks(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / HZ;
  } catch {
    return 0;
  }
}

/** This process and the programs it ran (the spawner shell's children are in its own counts). */
function ownCpu() {
  const u = process.cpuUsage();
  let ms = (u.user + u.system) / 1000;
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  ms += ((Number(f[13]) + Number(f[14])) * 1000) / HZ;
  for (const task of readdirSync('/proc/self/task')) {
    let kids = [];
    try {
      kids = readFileSync(`/proc/self/task/${task}/children`, 'utf8').split(' ').filter(Boolean);
    } catch {}
    for (const pid of kids) ms += ticks(pid);
  }
  return ms;
}

function cgroupCpu() {
  try {
    return Number(readFileSync(`/sys/fs/cgroup/cpuacct/alacarte/${instance}/cpuacct.usage`, 'utf8')) / 1e6;
  } catch {
    return 0;
  }
}

/** CPU of kernel worker threads (kworker, netns and mount clean-up run there), whole machine, ms. */
function kworkerCpu() {
  let ms = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('kworker')) ms += ticks(pid);
    } catch {}
  }
  return ms;
}

/** Busy CPU of the whole machine since boot, ms (every engineer's work included). */
function machineCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  return ((f.slice(0, 8).reduce((a, b) => a + b, 0) - idle) * 1000) / HZ;
}

const limits = { vcpu: 0.01, memoryMib: 16, pids: 32, diskMib: 1 };
const sample = () => ({ own: ownCpu(), cg: cgroupCpu() });
const diff = (a, b) => b.own - a.own + (b.cg - a.cg);
const startMs = [];
const stopMs = [];
const startCpu = [];
const stopCpu = [];
const life = async (record) => {
  const leaseId = `lse_${randomBytes(8).toString('hex')}`;
  const s0 = sample();
  const t0 = performance.now();
  const h = await driver.start({ leaseId, image: 'busybox' }, limits, new Date(Date.now() + 300_000));
  const t1 = performance.now();
  const s1 = sample();
  await driver.stop(h);
  const t2 = performance.now();
  const s2 = sample();
  if (!record) return;
  startMs.push(t1 - t0);
  stopMs.push(t2 - t1);
  startCpu.push(diff(s0, s1));
  stopCpu.push(diff(s1, s2));
};
for (let i = 0; i < 3; i++) await life(false);
const load0 = loadavg()[0];
const k0 = kworkerCpu();
const m0 = machineCpu();
const all0 = sample();
const w0 = performance.now();
for (let i = 0; i < cycles; i++) await life(true);
const wall = performance.now() - w0;
const all1 = sample();
const m1 = machineCpu();
const k1 = kworkerCpu();
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(
  JSON.stringify({
    dist,
    cycles,
    load: [load0, loadavg()[0]],
    wallPerLifeMs: wall / cycles,
    startP50Ms: med(startMs),
    stopP50Ms: med(stopMs),
    startCpuMs: mean(startCpu),
    stopCpuMs: mean(stopCpu),
    ownAndCgroupPerLifeMs: diff(all0, all1) / cycles,
    kworkerPerLifeMs: (k1 - k0) / cycles,
    machinePerLifeMs: (m1 - m0) / cycles,
  }),
);
await driver.close();
rmSync(base, { recursive: true, force: true });
