#!/usr/bin/env node
// A sandbox directory's making and removal (issue 13): the host file helper (src/drivers/crun/
// host-fs.ts, one perl process making the system calls) against the busybox scripts it replaces
// (one shell each, an applet forked per step; the driver runs them through its spawner shell). The
// made-ahead pool's making (a tmpfs layer, an overlay root, the run state, the FIFOs, a resolv.conf
// in the layer), then destroyDir. Prints the CPU each of the processes doing it (the helper's own;
// the scripts', reaped by this process), and the wall time. Root only. Not a *.bench.mjs.
//   node bench/host-fs.mjs          (N=200 by default)
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const N = Number(process.env.N ?? 200);
const dist = pathToFileURL(
  `${process.env.ALACARTE_BENCH_DIST ?? new URL('../dist', import.meta.url).pathname}/`,
);
const { destroyDir, LayerPool } = await import(new URL('drivers/crun/layer-pool.js', dist).href);
const { HostFs } = await import(new URL('drivers/crun/host-fs.js', dist).href);
const BUSYBOX = '/bin/busybox';

const base = mkdtempSync(join(tmpdir(), 'alacarte-bench-hostfs-'));
const runState = mkdtempSync('/dev/shm/alacarte-bench-hostfs-');
mkdirSync(join(base, 'images', 'img', 'etc'), { recursive: true });

/** CPU ms of a process: its own (utime + stime), or its reaped children's (cutime + cstime). */
function cpuMs(pid, children) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [a, b] = children ? [f[13], f[14]] : [f[11], f[12]];
  return (Number(a) + Number(b)) * 10; // USER_HZ 100
}
const childOf = (name) =>
  Number(spawnSync('pgrep', ['-n', '-P', String(process.pid), name], { encoding: 'utf8' }).stdout.trim());

/** N makings (the pool's, as a take that finds it empty), then their N removals, by one way. */
async function measure(label, key, fs) {
  mkdirSync(join(base, key));
  mkdirSync(join(runState, key));
  const pool = new LayerPool({
    runtimeDir: join(base, key),
    imagesDir: join(base, 'images'),
    runStateDir: join(runState, key),
    busybox: BUSYBOX,
    idBase: 100_000,
    size: 0,
    resolvConf: 'nameserver 192.0.2.53\n',
    hostFs: fs,
    create: async () => {},
    discard: async () => {},
    logger: { info: () => {}, warn: () => {} },
  });
  await destroyDir((await pool.take('img', 1, () => {})).dir, BUSYBOX, fs); // starts the helper
  // Without a driver, runProcess starts a script from this process, which reaps it.
  const [pid, children] = fs ? [childOf('perl'), false] : [process.pid, true];
  const row = async (what, work) => {
    const cpu0 = cpuMs(pid, children);
    const t0 = performance.now();
    const out = await work();
    const wall = (performance.now() - t0) / N;
    console.log(
      `| ${what}, ${label} | ${((cpuMs(pid, children) - cpu0) / N).toFixed(2)} | ${wall.toFixed(2)} |`,
    );
    return out;
  };
  const made = await row('make', async () => {
    const list = [];
    for (let i = 0; i < N; i++) list.push(await pool.take('img', 1, () => {}));
    return list;
  });
  await row('removal', async () => {
    for (const warm of made) await destroyDir(warm.dir, BUSYBOX, fs);
  });
  await pool.close();
}

console.log(
  `| a sandbox directory (${N} in a row, a tmpfs layer, an overlay root, run state) | CPU ms each | wall ms each |`,
);
console.log('| --- | ---: | ---: |');
try {
  const fs = HostFs.forHost();
  if (!fs) throw new Error('no host file helper on this host (perl, x64 or arm64)');
  await measure('busybox script (a shell each)', 'script', null);
  await measure('host file helper (perl, system calls)', 'helper', fs);
  fs.close();
} finally {
  spawnSync('sh', ['-c', `grep -o " ${base}[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l`]);
  rmSync(base, { recursive: true, force: true });
  rmSync(runState, { recursive: true, force: true });
}
