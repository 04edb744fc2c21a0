#!/usr/bin/env node
// LXD beside crun (issue 12): start-to-first-exec of a busybox sandbox on the LXD driver (a daemon of
// the benchmark's own, no network) with a dir pool and, where btrfs-progs and a loop device are
// there, a btrfs pool (which enforces disk sizes), and on the crun driver, and the exec round trip
// on each. Prints a Markdown section. Needs root, lxd, crun and busybox-static.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CrunDriver } from '../dist/drivers/crun/crun-driver.js';
import { destroyDir } from '../dist/drivers/crun/layer-pool.js';
import { mountsUnder } from '../dist/drivers/crun/mounts.js';
import { LxdClient } from '../dist/drivers/lxd/lxd-client.js';
import { LxdDriver } from '../dist/drivers/lxd/lxd-driver.js';

const ROUNDS = 20;
const EXECS = 30;
const limits = { vcpu: 0.5, memoryMib: 64, pids: 64, diskMib: 64 };
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};
const ms = (x) => x.toFixed(1);
const leaseId = () => `lse_${randomBytes(8).toString('hex')}`;
const now = () => Number(process.hrtime.bigint()) / 1e6;

const base = mkdtempSync(join(tmpdir(), 'alacarte-lxd-bench-'));
chmodSync(base, 0o711);
const state = join(base, 'state');
mkdirSync(state, { mode: 0o711 });
mkdirSync(join(base, 'pool'), { mode: 0o711 });
const env = { ...process.env, LXD_DIR: state };
const daemon = spawn('lxd', ['--group', 'root', '--logfile', join(base, 'lxd.log')], {
  env,
  stdio: 'ignore',
  detached: true,
});
const instance = `b${randomBytes(5).toString('hex')}`;
const crunOptions = {
  runtimeDir: join(base, 'rt'),
  imagesDir: join(base, 'images'),
  stateDir: `/run/alacarte-${instance}`,
  instance,
  warmLayers: 4,
};
let crun;
let lxd;
let lxdBtrfs;
const cleanup = async () => {
  for (const d of [lxd, lxdBtrfs, crun]) {
    if (!d) continue;
    for (const s of await d.list().catch(() => [])) await d.stop(s).catch(() => {});
    await d.close();
  }
  spawnSync('lxd', ['shutdown', '--timeout', '20'], { env, timeout: 30_000 });
  if (daemon.exitCode === null) daemon.kill('SIGKILL');
  for (const point of mountsUnder(base)) {
    await destroyDir(point, '/bin/busybox').catch(() => {});
    spawnSync('umount', ['-l', point]);
  }
  rmSync(crunOptions.stateDir, { recursive: true, force: true });
  if (mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
};

/** start() to the first exec(true) answered, and exec(true) round trips on a running sandbox. */
async function measure(driver) {
  const ready = [];
  for (let i = 0; i < ROUNDS; i++) {
    const id = leaseId();
    const t0 = now();
    const h = await driver.start({ leaseId: id, image: 'busybox' }, limits, new Date(Date.now() + 120_000));
    const r = await driver.exec(h, { command: ['true'], timeoutMs: 10_000, maxOutputBytes: 100 });
    ready.push(now() - t0);
    if (r.exitCode !== 0) throw new Error(`exec true answered ${r.exitCode}`);
    await driver.stop(h);
  }
  const h = await driver.start(
    { leaseId: leaseId(), image: 'busybox' },
    limits,
    new Date(Date.now() + 120_000),
  );
  const execs = [];
  for (let i = 0; i < EXECS; i++) {
    const t0 = now();
    await driver.exec(h, { command: ['true'], timeoutMs: 10_000, maxOutputBytes: 100 });
    execs.push(now() - t0);
  }
  await driver.stop(h);
  return { ready, execs };
}

try {
  const ready = spawnSync('lxd', ['waitready', '--timeout', '60'], { env, encoding: 'utf8' });
  if (ready.status !== 0) throw new Error(`LXD did not start: ${ready.stderr}`);
  // A btrfs file on a loop device, which LXD makes and mounts itself (size= is the file's).
  const btrfs =
    spawnSync('sh', ['-c', 'command -v mkfs.btrfs && losetup -f'], { stdio: 'ignore' }).status === 0;
  const preseed = `config:\n  images.auto_update_interval: "0"\nstorage_pools:\n- name: default\n  driver: dir\n  config:\n    source: ${join(base, 'pool')}\n${btrfs ? '- name: quota\n  driver: btrfs\n  config:\n    size: 4GiB\n' : ''}`;
  const init = spawnSync('lxd', ['init', '--preseed'], { env, input: preseed, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`lxd init failed: ${init.stderr}`);
  lxd = await LxdDriver.create({
    client: new LxdClient({ socketPath: join(state, 'unix.socket') }),
    imagesDir: join(base, 'lxd-images'),
    runtimeDir: join(base, 'lxd-sandboxes'),
  });
  // The image is imported into LXD once; that first start is not what a renter waits for.
  const warm = await lxd.start(
    { leaseId: leaseId(), image: 'busybox' },
    limits,
    new Date(Date.now() + 60_000),
  );
  await lxd.stop(warm);
  if (btrfs) {
    lxdBtrfs = await LxdDriver.create({
      client: new LxdClient({ socketPath: join(state, 'unix.socket') }),
      imagesDir: join(base, 'lxd-images'),
      runtimeDir: join(base, 'lxd-btrfs-sandboxes'),
      storagePool: 'quota',
      owner: 'bench-btrfs',
    });
    // The image is unpacked into the pool once, at its first instance.
    await lxdBtrfs.stop(
      await lxdBtrfs.start({ leaseId: leaseId(), image: 'busybox' }, limits, new Date(Date.now() + 60_000)),
    );
  }
  crun = await CrunDriver.create(crunOptions);
  const c = await measure(crun);
  const l = await measure(lxd);
  const b = lxdBtrfs && (await measure(lxdBtrfs));
  const version = readFileSync('/proc/version', 'utf8').split(' ')[2];
  const lxdVersion = spawnSync('lxd', ['--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(
    [
      '## LXD driver beside crun',
      '',
      `${ROUNDS} rounds each, busybox image, offer ${JSON.stringify(limits)}; LXD ${lxdVersion} (dir pool${b ? ', and a btrfs pool on a loop file' : ''}, no network, ephemeral unprivileged containers), crun driver with 4 warm layers; kernel ${version}; load average at the end ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}.`,
      '',
      `| measure | crun median (ms) | crun p90 (ms) | LXD dir median (ms) | LXD dir p90 (ms) |${b ? ' LXD btrfs median (ms) | LXD btrfs p90 (ms) |' : ''}`,
      `| --- | ---: | ---: | ---: | ---: |${b ? ' ---: | ---: |' : ''}`,
      `| \`start()\` to first \`exec(true)\` answered | ${ms(quantile(c.ready, 0.5))} | ${ms(quantile(c.ready, 0.9))} | ${ms(quantile(l.ready, 0.5))} | ${ms(quantile(l.ready, 0.9))} |${b ? ` ${ms(quantile(b.ready, 0.5))} | ${ms(quantile(b.ready, 0.9))} |` : ''}`,
      `| \`exec(true)\` round trip | ${ms(quantile(c.execs, 0.5))} | ${ms(quantile(c.execs, 0.9))} | ${ms(quantile(l.execs, 0.5))} | ${ms(quantile(l.execs, 0.9))} |${b ? ` ${ms(quantile(b.execs, 0.5))} | ${ms(quantile(b.execs, 0.9))} |` : ''}`,
      '',
      `- LXD (dir pool) start-to-first-exec / crun: **${(quantile(l.ready, 0.5) / quantile(c.ready, 0.5)).toFixed(1)}x**; LXD creates each instance from its image (dir pool: a copy of the root filesystem) where crun hands out a warm layer made ahead.`,
      b
        ? `- LXD btrfs pool / dir pool, start-to-first-exec: **${(quantile(b.ready, 0.5) / quantile(l.ready, 0.5)).toFixed(2)}x**; btrfs makes each instance a snapshot of the image's subvolume and enforces its disk size (a qgroup limit).`
        : '- No btrfs pool measured (needs btrfs-progs and a free loop device).',
    ].join('\n'),
  );
} finally {
  await cleanup();
}
