import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountsUnder } from '../../../src/drivers/crun/mounts.js';
import { LxdClient } from '../../../src/drivers/lxd/lxd-client.js';
import { LxdDriver, type LxdDriverOptions } from '../../../src/drivers/lxd/lxd-driver.js';
import { findOnPath } from './crun-target.js';

/** Why a real LXD daemon cannot run here, or undefined when it can. */
export const lxdSkipReason: string | undefined =
  process.getuid?.() !== 0
    ? 'needs root (LXD runs as root)'
    : !findOnPath('lxd')
      ? 'no lxd installed (Debian package lxd; scripts/setup.sh --test installs it)'
      : !existsSync('/bin/busybox')
        ? 'no /bin/busybox (scripts/setup.sh installs busybox-static)'
        : undefined;

/**
 * Why the test daemons' storage pool cannot enforce disk sizes here (so it is `dir`), or undefined
 * when it is `btrfs` on a loop file LXD makes itself: btrfs-progs to make the file system, btrfs in
 * the kernel, and a loop device this process may attach (tried on a 1 MiB file, as a container
 * without loop devices refuses it).
 */
export const lxdQuotaPoolSkipReason: string | undefined = lxdSkipReason
  ? lxdSkipReason
  : !findOnPath('mkfs.btrfs')
    ? 'no mkfs.btrfs (Debian package btrfs-progs; scripts/setup.sh --test installs it)'
    : !/\tbtrfs$/m.test(readFileOr('/proc/filesystems'))
      ? 'no btrfs in this kernel (/proc/filesystems)'
      : loopDeviceRefusal();

/** Why no loop device can be attached here (losetup's words), or undefined when one can. */
function loopDeviceRefusal(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-loop-probe-'));
  try {
    const file = join(dir, 'probe.img');
    writeFileSync(file, '');
    truncateSync(file, 2 ** 20);
    const r = spawnSync('losetup', ['--find', '--show', file], { encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0)
      return `no loop device to mount a btrfs pool file on (losetup: ${(r.stderr || r.error?.message || '').trim().slice(0, 200)})`;
    spawnSync('losetup', ['--detach', r.stdout.trim()], { timeout: 10_000 });
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The storage pool driver of the test daemons: one that enforces root disk sizes where it can. */
export const lxdPoolDriver: 'btrfs' | 'dir' = lxdQuotaPoolSkipReason ? 'dir' : 'btrfs';

/**
 * Size of a test daemon's btrfs pool file (sparse: only what instances write takes room). Holds
 * the images of a suite (debian's unpacked root is the largest) and its instances' writes.
 */
const POOL_SIZE = '6GiB';

function readFileOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The `storage_pools` entry of a preseed: btrfs on a loop file (LXD makes `<state>/disks/<name>.img`
 * and mounts it; `lxd shutdown` unmounts it and frees the loop device) where it can be made, else
 * `dir` in `dirSource`.
 */
function poolPreseed(dirSource: string, pool: 'btrfs' | 'dir'): string {
  return pool === 'btrfs'
    ? `storage_pools:
- name: default
  driver: btrfs
  config:
    size: ${POOL_SIZE}
`
    : `storage_pools:
- name: default
  driver: dir
  config:
    source: ${dirSource}
`;
}

/** A running LXD daemon of a test's own, in a temporary state directory. */
export interface LxdDaemon {
  socketPath: string;
  base: string;
  /** The daemon's host pid (a test may kill it). */
  pid: number;
  /** Shuts the daemon down (its instances with it) and removes its state directory. */
  stop(): Promise<void>;
}

/** An `lxd` process on a state directory of its own. */
interface LxdProcess {
  env: NodeJS.ProcessEnv;
  pid: number;
  /** Shuts it down (its instances with it), killing it if it does not go. */
  shutdown(): void;
}

/**
 * Starts `lxd --group root` with LXD_DIR=`state` (so it never meets the host's LXD, if any) and
 * waits until it answers; throws with LXD's own words when it does not.
 */
function spawnLxd(state: string, logFile: string): LxdProcess {
  const env = { ...process.env, LXD_DIR: state };
  const daemon: ChildProcess = spawn('lxd', ['--group', 'root', '--logfile', logFile], {
    env,
    stdio: 'ignore',
    detached: true,
  });
  const shutdown = () => {
    // Instances first, forced: `lxd shutdown` asks each to stop cleanly (SIGPWR, which init ignores)
    // for longer than its own timeout here, and the daemon killed then left them running, with their
    // `lxc monitor`, until their deadline (hours, in some tests).
    spawnSync('lxc', ['stop', '--all', '--force'], { env, timeout: 60_000, stdio: 'ignore' });
    spawnSync('lxd', ['shutdown', '--timeout', '20'], { env, timeout: 30_000 });
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
  };
  const ready = spawnSync('lxd', ['waitready', '--timeout', '60'], {
    env,
    encoding: 'utf8',
    timeout: 70_000,
  });
  if (ready.status !== 0) {
    shutdown();
    throw new Error(`LXD did not start: ${ready.stderr}`);
  }
  return { env, pid: daemon.pid ?? 0, shutdown };
}

/** Unmounts what LXD left mounted below `base`, then removes it (kept if something stays mounted). */
function removeBase(base: string): void {
  for (const point of mountsUnder(base)) spawnSync('umount', ['-l', point]);
  if (mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
}

function lxdInit(env: NodeJS.ProcessEnv, preseed: string): void {
  const init = spawnSync('lxd', ['init', '--preseed'], {
    env,
    input: preseed,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (init.status !== 0) throw new Error(`lxd init failed: ${init.stderr}`);
}

/**
 * Starts an LXD daemon of the test's own in a temporary state directory and initialises it with a
 * storage pool there (btrfs on a loop file, which enforces root disk sizes, or `dir` where that
 * cannot be made: see lxdQuotaPoolSkipReason; `pool` chooses) and no network at all (no bridge:
 * instances get no NIC).
 * Throws with LXD's own words when it cannot start.
 */
export async function startLxd(pool: 'btrfs' | 'dir' = lxdPoolDriver): Promise<LxdDaemon> {
  const base = mkdtempSync(join(tmpdir(), 'alacarte-lxd-'));
  chmodSync(base, 0o711);
  const state = join(base, 'state');
  mkdirSync(state, { mode: 0o711 });
  mkdirSync(join(base, 'pool'), { mode: 0o711 });
  let daemon: LxdProcess;
  try {
    daemon = spawnLxd(state, join(base, 'lxd.log'));
  } catch (e) {
    removeBase(base);
    throw e;
  }
  const stop = async () => {
    daemon.shutdown();
    removeBase(base);
  };
  const preseed = `config:
  images.auto_update_interval: "0"
${poolPreseed(join(base, 'pool'), pool)}`;
  writeFileSync(join(base, 'preseed.yaml'), preseed);
  try {
    lxdInit(daemon.env, preseed);
  } catch (e) {
    await stop();
    throw e;
  }
  return { socketPath: join(state, 'unix.socket'), base, pid: daemon.pid, stop };
}

/** A self-signed client certificate and key (PEM), as an operator makes one for `lxc config trust add`. */
export function clientCertificate(
  dir: string,
  name: string,
): { cert: string; key: string; certPath: string } {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:secp384r1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), certPath };
}

/** A cluster of LXD daemons on this machine, each its own member, and alacarte's TLS endpoint to it. */
export interface LxdCluster {
  base: string;
  members: Array<{ name: string; address: string }>;
  /** alacarte's endpoint: the first member over HTTPS, its client certificate trusted by the cluster. */
  endpoint: { url: string; clientCert: string; clientKey: string; serverCert: string };
  /** `lxc` against the first member (its unix socket). */
  lxc(args: string[]): string;
  stop(): Promise<void>;
}

/**
 * Bootstraps a real LXD cluster of `size` members on this machine, the way an operator does it on
 * several (src/drivers/lxd/README.md): each member an `lxd` daemon with its own LXD_DIR and its own
 * loopback address (127.0.0.2, .3, ...), the first enabled as a cluster by preseed, the others
 * joined with a token from `lxc cluster add` and a join preseed giving their own `dir` pool source,
 * and alacarte's client certificate trusted. Throws with LXD's words at the step that fails.
 */
export async function startLxdCluster(size = 3, port = 8443): Promise<LxdCluster> {
  const base = mkdtempSync(join(tmpdir(), 'alacarte-lxd-cluster-'));
  chmodSync(base, 0o711);
  const daemons: LxdProcess[] = [];
  const members: LxdCluster['members'] = [];
  const stop = async () => {
    for (const d of [...daemons].reverse()) d.shutdown();
    removeBase(base);
  };
  try {
    for (let i = 1; i <= size; i++) {
      const name = `m${i}`;
      const dir = join(base, name);
      for (const sub of ['', 'state', 'pool']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o711 });
      const address = `127.0.0.${i + 1}:${port}`;
      const daemon = spawnLxd(join(dir, 'state'), join(dir, 'lxd.log'));
      daemons.push(daemon);
      const first = daemons[0] as LxdProcess;
      if (i === 1) {
        lxdInit(
          daemon.env,
          `config:
  core.https_address: ${address}
  images.auto_update_interval: "0"
cluster:
  server_name: ${name}
  enabled: true
storage_pools:
- name: default
  driver: dir
  config:
    source: ${join(dir, 'pool')}
`,
        );
      } else {
        const token = lxc(first.env, ['cluster', 'add', name]).trim().split('\n').at(-1) ?? '';
        lxdInit(
          daemon.env,
          `cluster:
  enabled: true
  server_name: ${name}
  server_address: ${address}
  cluster_token: ${token}
  member_config:
  - entity: storage-pool
    name: default
    key: source
    value: ${join(dir, 'pool')}
`,
        );
      }
      members.push({ name, address });
    }
    const first = daemons[0] as LxdProcess;
    const client = clientCertificate(base, 'alacarte');
    lxc(first.env, ['config', 'trust', 'add', client.certPath]);
    return {
      base,
      members,
      endpoint: {
        url: `https://${members[0]?.address}`,
        clientCert: client.cert,
        clientKey: client.key,
        serverCert: readFileSync(join(base, 'm1', 'state', 'cluster.crt'), 'utf8'),
      },
      lxc: (args) => lxc(first.env, args),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

function lxc(env: NodeJS.ProcessEnv, args: string[]): string {
  const r = spawnSync('lxc', args, { env, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`lxc ${args[0]} ${args[1] ?? ''} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface LxdTarget {
  driver: LxdDriver;
  daemon: LxdDaemon;
  options: LxdDriverOptions;
  imagesDir: string;
  dispose(): Promise<void>;
}

/**
 * An LXD driver on a fresh daemon (its storage pool `pool`, by default the one that enforces disk
 * sizes where it can be made), its images and sandbox directories temporary too.
 */
export async function makeLxdTarget(
  overrides: Partial<LxdDriverOptions> = {},
  pool: 'btrfs' | 'dir' = lxdPoolDriver,
): Promise<LxdTarget> {
  const daemon = await startLxd(pool);
  const options: LxdDriverOptions = {
    client: new LxdClient({ socketPath: daemon.socketPath }),
    imagesDir: join(daemon.base, 'images'),
    runtimeDir: join(daemon.base, 'sandboxes'),
    ...overrides,
  };
  const driver = await LxdDriver.create(options);
  return {
    driver,
    daemon,
    options,
    imagesDir: options.imagesDir,
    dispose: async () => {
      for (const s of await driver.list().catch(() => [])) await driver.stop(s).catch(() => {});
      await driver.close();
      await daemon.stop();
    },
  };
}
