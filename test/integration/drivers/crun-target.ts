import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CrunDriver } from '../../../src/drivers/crun/crun-driver.js';
import type { CrunDriverOptions } from '../../../src/drivers/crun/crun-options.js';
import { destroyDir } from '../../../src/drivers/crun/layer-pool.js';
import { mountsUnder } from '../../../src/drivers/crun/mounts.js';

export function findOnPath(name: string): string | undefined {
  return ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']
    .map((d) => join(d, name))
    .find((p) => existsSync(p));
}

function onPath(name: string): boolean {
  return findOnPath(name) !== undefined;
}

/** Why the crun suites cannot run here, or undefined when they can. */
export const crunSkipReason: string | undefined =
  process.getuid?.() !== 0
    ? 'needs root (user namespaces, cgroups, mounts)'
    : !onPath('crun') && !onPath('runc')
      ? 'no crun or runc installed (scripts/setup.sh installs crun)'
      : !existsSync('/bin/busybox')
        ? 'no /bin/busybox (scripts/setup.sh installs busybox-static)'
        : undefined;

export interface CrunTarget {
  driver: CrunDriver;
  base: string;
  options: CrunDriverOptions;
  imagesDir: string;
  dispose(): Promise<void>;
}

/** Every file of a sandbox's cgroup, whatever the host's cgroup version. */
export function cgroupFile(controller: string, path: string, file: string): string {
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
  return v2 ? join('/sys/fs/cgroup', path, file) : join('/sys/fs/cgroup', controller, path, file);
}

export function readCgroup(controller: string, path: string, file: string): string {
  return readFileSync(cgroupFile(controller, path, file), 'utf8');
}

const isV2 = () => existsSync('/sys/fs/cgroup/cgroup.controllers');

/** How often the kernel's OOM killer struck inside a sandbox's cgroup. */
export function oomKills(path: string): number {
  const text = isV2()
    ? readCgroup('', path, 'memory.events')
    : readCgroup('memory', path, 'memory.oom_control');
  return Number(/oom_kill (\d+)/.exec(text)?.[1] ?? '0');
}

/** CPU time a sandbox's cgroup has used, in nanoseconds. */
export function cpuUsageNs(path: string): number {
  if (isV2()) return Number(/usage_usec (\d+)/.exec(readCgroup('', path, 'cpu.stat'))?.[1] ?? '0') * 1000;
  return Number(readCgroup('cpuacct', path, 'cpuacct.usage'));
}

/** Options for a driver that lives in its own temporary directories, apart from any other. */
export function tempDriverOptions(base = tempBase()): CrunDriverOptions {
  const instance = `t${randomBytes(5).toString('hex')}`;
  return {
    runtimeDir: join(base, 'rt'),
    imagesDir: join(base, 'images'),
    stateDir: `/run/alacarte-${instance}`,
    instance,
    warmLayers: 1,
  };
}

/** Removes what a test driver left: layers, state, cgroup parents. Sandboxes must be stopped first. */
export async function removeDriverFiles(options: CrunDriverOptions, base: string): Promise<void> {
  for (const point of mountsUnder(base)) await destroyDir(point, '/bin/busybox').catch(() => {});
  if (mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
  if (options.stateDir) rmSync(options.stateDir, { recursive: true, force: true });
  // The sandboxes' run state beside it (run-state.ts): gone with the driver's close() unless a test
  // failed with sandboxes in it.
  const runState = options.stateDir === undefined ? undefined : `${options.stateDir}-run`;
  if (runState && existsSync(runState)) await destroyDir(runState, '/bin/busybox').catch(() => {});
  const cgroupRoot = '/sys/fs/cgroup';
  const hierarchies = existsSync(join(cgroupRoot, 'cgroup.controllers')) ? [''] : readdirSync(cgroupRoot);
  for (const h of hierarchies) {
    try {
      rmdirSync(join(cgroupRoot, h, 'alacarte', options.instance ?? ''));
    } catch {
      // not there, or still busy
    }
  }
}

/** A private temporary directory that sandboxes (unprivileged ids) may still traverse. */
export function tempBase(): string {
  const base = mkdtempSync(join(tmpdir(), 'alacarte-crun-'));
  chmodSync(base, 0o711);
  return base;
}

export async function makeCrunTarget(overrides: Partial<CrunDriverOptions> = {}): Promise<CrunTarget> {
  const base = tempBase();
  const options = { ...tempDriverOptions(base), ...overrides };
  const driver = await CrunDriver.create(options);
  return {
    driver,
    base,
    options,
    imagesDir: options.imagesDir,
    dispose: async () => {
      for (const s of await driver.list()) await driver.stop(s);
      await driver.close();
      await removeDriverFiles(options, base);
    },
  };
}
