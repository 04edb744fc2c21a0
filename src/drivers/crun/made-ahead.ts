import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AlacarteError } from '../../core/errors.js';
import type { SandboxLimits } from '../compute-driver.js';
import type { MadeLimits } from './cgroup-limits.js';
import { tail } from './container-runtime.js';
import type { DriverState } from './driver-state.js';
import { type ImageConfig, readImageConfig } from './image-config.js';
import { untilAgentReads, untilInitRuns } from './init-process.js';
import { deadlineFile, START_FIFO } from './init-script.js';
import { destroyDir, etcIsLink, type WarmSandbox } from './layer-pool.js';
import { IN_SANDBOX, ociSpec } from './oci-spec.js';
import { ensureImageOwnership } from './preflight.js';
import { runDetached, runProcess } from './run-process.js';
import { writeAtomic } from './sandbox-meta.js';

/** How long a made-ahead sandbox may wait for a lease before its own init ends it. */
const WARM_LIFETIME_MS = 3_600_000;

/**
 * Limits a sandbox is created with while it waits in the pool, when no lease of its kind came before
 * (else its memory, pids and cpuset are the last one's: madeLimits()); start() writes the offer's.
 */
const PLACEHOLDER_LIMITS = { vcpu: 1, memoryMib: 256, pids: 64 };

/**
 * The driver's side of its made-ahead pool (layer-pool.ts keeps the pool itself): making a sandbox
 * ahead (its bundle, the runtime's create and start, and the waits until its init and exec agent
 * run), discarding one, taking one whose init and lxcfs still answer, and knowing whether an image
 * is still the one its waiting sandboxes were made from.
 */
export class MadeAhead {
  /**
   * Images in use, by name: their root's identity (inode and change time, as inode numbers are
   * reused: a new one means the image was replaced) and config.
   */
  private readonly knownImages = new Map<string, { identity: string; config: ImageConfig }>();
  /** Made-ahead sandbox name -> device of the lxcfs it binds, as seen answering when it was made. */
  private readonly lxcfsDevices = new Map<string, number>();
  /** The last lease's limits per (image, disk size): what sandboxes made ahead are created with. */
  private readonly expected = new Map<string, SandboxLimits>();

  constructor(private readonly s: DriverState) {}

  /** Notes a lease's limits: the next sandboxes made ahead for its image and disk size get them. */
  expect(image: string, limits: SandboxLimits): void {
    this.expected.set(`${image}\0${limits.diskMib}`, limits);
  }

  /**
   * The memory, pids and cpuset a sandbox made ahead for (image, disk size) is created with: the last
   * lease's of that kind (the next is most likely alike), so that its start writes none of them
   * (cgroup-limits.ts); undefined before any such lease (the placeholders). CPU time stays the
   * placeholder's, so that a tiny offer's quota never slows the making. The cpuset only where the
   * host has a cpuset controller, which the runtime needs to take one.
   */
  private madeLimits(image: string, diskMib: number, cgroup: string): MadeLimits | undefined {
    const last = this.expected.get(`${image}\0${diskMib}`);
    if (last === undefined) return undefined;
    const cpus = this.s.cgroups.cpuset
      ? this.s.cpus.pick(last.vcpu, this.s.parentCpus.of(this.s.cgroups.mode, cgroup))
      : undefined;
    return { memoryMib: last.memoryMib, pids: last.pids, ...(cpus === undefined ? {} : { cpus }) };
  }

  /** Removes the container of a made-ahead sandbox the pool lets go of (its directory is the pool's to remove). */
  discard(warm: WarmSandbox): Promise<void> {
    this.lxcfsDevices.delete(warm.name);
    return this.s.rt.removeContainer(warm.name);
  }

  /** Writes the bundle of a sandbox made ahead and has the runtime create it (not start it). */
  async createContainer(warm: WarmSandbox, image: string, diskMib: number): Promise<void> {
    const lxcfsDir = await this.s.lxcfs.forNewSandbox();
    const lxcfsDevice = lxcfsDir === undefined ? undefined : await this.s.lxcfs.answeringDevice();
    if (lxcfsDevice !== undefined) this.lxcfsDevices.set(warm.name, lxcfsDevice);
    const made = this.madeLimits(image, diskMib, this.s.cgroupOf(warm.name));
    const config = ociSpec({
      hostname: 'sandbox',
      rootfs: join(warm.dir, 'rootfs'),
      runDir: join(this.s.paths.runState, warm.name, 'run'),
      libDir: this.s.paths.libDir,
      limits: { ...PLACEHOLDER_LIMITS, ...(made && { memoryMib: made.memoryMib, pids: made.pids }), diskMib },
      cpus: made?.cpus,
      idBase: this.s.idBase,
      idCount: this.s.idCount,
      cgroupsPath: this.s.cgroupOf(warm.name),
      swapAccounting: this.s.cgroups.swapAccounting,
      lxcfsDir,
      init: this.s.init,
    });
    writeFileSync(join(warm.dir, 'config.json'), JSON.stringify(config));
    // Until a lease takes it, a made-ahead sandbox ends by itself after a while, like any other.
    writeAtomic(join(warm.dir, 'run', 'deadline'), deadlineFile(new Date(Date.now() + WARM_LIFETIME_MS)));
    const logFile = join(warm.dir, 'runtime.log');
    const code = await runDetached(this.s.runtime.path, [
      `--log=${logFile}`,
      '--root',
      this.s.paths.stateDir,
      'create',
      '--pid-file',
      join(warm.dir, 'init.pid'),
      '--bundle',
      warm.dir,
      this.s.rt.containerId(warm.name),
    ]);
    if (code !== 0) throw new Error(`${this.s.runtime.name} create exited ${code}: ${tail(logFile)}`);
    await this.s.rt.startContainer(warm.name, logFile);
    await untilInitRuns(warm.dir, this.s.init);
    await untilAgentReads(warm.dir, this.s.log);
    warm.limits = made;
    // The resolv.conf an egress lease needs is in the writable layer already (etcInLayer()), but
    // for an image whose /etc is a link: written from inside then, as the sandbox's root.
    if (!etcIsLink(join(this.s.paths.imagesDir, image))) return;
    await runProcess(this.s.runtime.path, [
      '--root',
      this.s.paths.stateDir,
      'exec',
      this.s.rt.containerId(warm.name),
      IN_SANDBOX.busybox,
      'sh',
      '-c',
      'mkdir -p /etc && rm -f /etc/resolv.conf && printf %s "$1" > /etc/resolv.conf',
      'sh',
      this.s.egress.resolvConf(),
    ]);
  }

  /** A made-ahead sandbox whose init still runs (one waiting too long has ended at its provisional deadline). */
  async takeAlive(image: string, diskMib: number, claim: (warm: WarmSandbox) => void): Promise<WarmSandbox> {
    for (let i = 0; ; i++) {
      const warm = await this.s.pool.take(image, diskMib, claim);
      if (i >= 3 || (await this.poolInitAlive(warm))) return warm;
      this.s.log.warn(`alacarte: a waiting sandbox ${warm.name} had ended or lost its lxcfs; taking another`);
      await this.s.rt.removeContainer(warm.name).catch(() => {});
      await destroyDir(warm.dir, this.s.paths.busybox).catch(() => {});
    }
  }

  /**
   * Its init runs, and the lxcfs files it bound still answer (a killed lxcfs leaves them dead):
   * one check of the lxcfs shared by every take when it is the mount the sandbox bound, else an
   * open through the sandbox's own root.
   */
  private async poolInitAlive(warm: WarmSandbox): Promise<boolean> {
    const bound = this.lxcfsDevices.get(warm.name);
    this.lxcfsDevices.delete(warm.name);
    let pid: number;
    try {
      // Its run state too (a tmpfs entry): a sweep by another driver over the same directories can
      // remove it while init still runs, and start() then fails on the lease's files.
      if (!existsSync(join(warm.dir, 'run', START_FIFO))) return false;
      pid = Number.parseInt(readFileSync(join(warm.dir, 'init.pid'), 'utf8'), 10);
      if (!readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`:${this.s.cgroupOf(warm.name)}\n`))
        return false;
    } catch {
      return false;
    }
    if (bound !== undefined && (await this.s.lxcfs.answeringDevice()) === bound) return true;
    return this.s.lxcfs.answersIn(pid);
  }

  /**
   * The image's config, once its owners are shifted. An image removed or replaced under the same
   * name (alacarte image rm/pull while the node runs) has a new root inode: its sandboxes made
   * ahead show the old tree, so they are dropped.
   */
  ensureImage(image: string): ImageConfig {
    const dir = join(this.s.paths.imagesDir, image);
    const identity = () => {
      const st = statSync(dir);
      return `${st.ino}:${st.ctimeMs}`;
    };
    let seen: string;
    try {
      seen = identity();
    } catch {
      throw new AlacarteError('invalid_request', `unknown image ${image}`);
    }
    const known = this.knownImages.get(image);
    if (known?.identity === seen) return known.config;
    if (known) this.s.pool.forget(image);
    ensureImageOwnership(dir, this.s.idBase, this.s.log);
    const config = readImageConfig(dir);
    // After the shift, which changes the root's change time.
    this.knownImages.set(image, { identity: identity(), config });
    return config;
  }
}
