import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

/** A running LXD daemon of a test's own, in a temporary state directory. */
export interface LxdDaemon {
  socketPath: string;
  base: string;
  /** The daemon's host pid (a test may kill it). */
  pid: number;
  /** Shuts the daemon down (its instances with it) and removes its state directory. */
  stop(): Promise<void>;
}

/**
 * Starts `lxd --group root` with its own LXD_DIR (so it never meets the host's LXD, if any), waits
 * until it answers, and initialises it with a `dir` storage pool in that directory and no network
 * at all (no bridge: instances get no NIC). Throws with LXD's own words when it cannot start.
 */
export async function startLxd(): Promise<LxdDaemon> {
  const base = mkdtempSync(join(tmpdir(), 'alacarte-lxd-'));
  chmodSync(base, 0o711);
  const state = join(base, 'state');
  mkdirSync(state, { mode: 0o711 });
  mkdirSync(join(base, 'pool'), { mode: 0o711 });
  const env = { ...process.env, LXD_DIR: state };
  const daemon: ChildProcess = spawn('lxd', ['--group', 'root', '--logfile', join(base, 'lxd.log')], {
    env,
    stdio: 'ignore',
    detached: true,
  });
  const stop = async () => {
    spawnSync('lxd', ['shutdown', '--timeout', '20'], { env, timeout: 30_000 });
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
    for (const point of mountsUnder(base)) spawnSync('umount', ['-l', point]);
    if (mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
  };
  const ready = spawnSync('lxd', ['waitready', '--timeout', '60'], {
    env,
    encoding: 'utf8',
    timeout: 70_000,
  });
  if (ready.status !== 0) {
    await stop();
    throw new Error(`LXD did not start: ${ready.stderr}`);
  }
  const preseed = `config:
  images.auto_update_interval: "0"
storage_pools:
- name: default
  driver: dir
  config:
    source: ${join(base, 'pool')}
`;
  writeFileSync(join(base, 'preseed.yaml'), preseed);
  const init = spawnSync('lxd', ['init', '--preseed'], {
    env,
    input: preseed,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (init.status !== 0) {
    await stop();
    throw new Error(`lxd init failed: ${init.stderr}`);
  }
  return { socketPath: join(state, 'unix.socket'), base, pid: daemon.pid ?? 0, stop };
}

export interface LxdTarget {
  driver: LxdDriver;
  daemon: LxdDaemon;
  options: LxdDriverOptions;
  dispose(): Promise<void>;
}

/** An LXD driver on a fresh daemon, its images and sandbox directories temporary too. */
export async function makeLxdTarget(overrides: Partial<LxdDriverOptions> = {}): Promise<LxdTarget> {
  const daemon = await startLxd();
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
    dispose: async () => {
      for (const s of await driver.list().catch(() => [])) await driver.stop(s).catch(() => {});
      await driver.close();
      await daemon.stop();
    },
  };
}
