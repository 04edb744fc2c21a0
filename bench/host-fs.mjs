#!/usr/bin/env node
// A sandbox directory's removal (issue 13): the host file helper (src/drivers/crun/host-fs.ts, one
// perl process making the system calls) against the busybox script it replaces (one shell per
// removal, an applet forked per step; the driver runs it through its spawner shell). Each
// removal takes a directory as the made-ahead pool leaves it: a tmpfs layer, an overlay root, its
// run state linked. Prints the CPU per removal of the processes doing it (the helper's own; the
// spawner shell's reaped children), and the wall time. Root only. Not a *.bench.mjs.
//   node bench/host-fs.mjs          (N=200 by default)
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const N = Number(process.env.N ?? 200);
const dist = pathToFileURL(
  `${process.env.ALACARTE_BENCH_DIST ?? new URL('../dist', import.meta.url).pathname}/`,
);
const { destroyDir } = await import(new URL('drivers/crun/layer-pool.js', dist).href);
const { HostFs } = await import(new URL('drivers/crun/host-fs.js', dist).href);

const base = mkdtempSync(join(tmpdir(), 'alacarte-bench-hostfs-'));
const runState = mkdtempSync('/dev/shm/alacarte-bench-hostfs-');
mkdirSync(join(base, 'image', 'etc'), { recursive: true });

function made(name) {
  const dir = join(base, name);
  mkdirSync(join(dir, 'layer'), { recursive: true });
  mkdirSync(join(dir, 'rootfs'));
  mkdirSync(join(runState, name, 'run', 'x'), { recursive: true });
  symlinkSync(join(runState, name, 'run'), join(dir, 'run'));
  const mount = (...args) => {
    const r = spawnSync('mount', args);
    if (r.status !== 0) throw new Error(r.stderr.toString());
  };
  mount('-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', join(dir, 'layer'));
  mkdirSync(join(dir, 'layer', 'upper'));
  mkdirSync(join(dir, 'layer', 'work'));
  mount(
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${join(base, 'image')},upperdir=${join(dir, 'layer', 'upper')},workdir=${join(dir, 'layer', 'work')}`,
    join(dir, 'rootfs'),
  );
  return dir;
}

/** CPU ms of a process: its own (utime + stime), or its reaped children's (cutime + cstime). */
function cpuMs(pid, children) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [a, b] = children ? [f[13], f[14]] : [f[11], f[12]];
  return (Number(a) + Number(b)) * 10; // USER_HZ 100
}
const childOf = (name) =>
  Number(spawnSync('pgrep', ['-n', '-P', String(process.pid), name], { encoding: 'utf8' }).stdout.trim());

async function measure(label, key, fs, processName, children) {
  const dirs = Array.from({ length: N }, (_, i) => made(`${key}-${i}`));
  await destroyDir(join(base, 'none'), '/bin/busybox', fs); // starts the helper or the spawner
  // Without a driver, runProcess starts the script from this process, which reaps it.
  const pid = processName === 'node' ? process.pid : childOf(processName);
  const cpu0 = cpuMs(pid, children);
  const t0 = performance.now();
  for (const dir of dirs) await destroyDir(dir, '/bin/busybox', fs);
  const wall = (performance.now() - t0) / N;
  const cpu = (cpuMs(pid, children) - cpu0) / N;
  console.log(`| ${label} | ${cpu.toFixed(2)} | ${wall.toFixed(2)} |`);
  return cpu;
}

console.log(`| removal of a sandbox directory (${N} in a row) | CPU ms each | wall ms each |`);
console.log('| --- | ---: | ---: |');
try {
  const fs = HostFs.forHost();
  if (!fs) throw new Error('no host file helper on this host (perl, x64 or arm64)');
  const script = await measure('busybox script (a shell per removal)', 'script', null, 'node', true);
  const helper = await measure('host file helper (perl, system calls)', 'helper', fs, 'perl', false);
  console.log(`\nhelper ÷ script (CPU): ${(helper / script).toFixed(2)}×`);
  fs.close();
} finally {
  spawnSync('sh', ['-c', `grep -o " ${base}[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l`]);
  rmSync(base, { recursive: true, force: true });
  rmSync(runState, { recursive: true, force: true });
}
