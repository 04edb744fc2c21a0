import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AlacarteError } from '../../core/errors.js';
import { ENV_NAME_PATTERN, IMAGE_NAME_PATTERN, SANDBOX_ID_PATTERN } from '../../core/lease-request.js';
import type { SandboxHandle, SandboxLimits, SandboxSpec } from '../compute-driver.js';
import { type ImageConfig, leaseArgv, readImageConfig } from '../crun/image-config.js';
import { commandFile } from '../crun/init-script.js';
import type { DriverState } from './driver-state.js';
import { IN_INSTANCE } from './in-instance.js';
import { instanceConfig } from './instance-config.js';
import type { LeaseIo } from './lease-io.js';
import { ensureLxdImage } from './lxd-image.js';
import type { PortRelays } from './port-relays.js';
import { rootDiskSize } from './root-disk.js';
import { pushRunDir, writeLeaseDir } from './run-dir.js';
import type { SandboxRemoval } from './sandbox-removal.js';

/**
 * start(): a lease's instance made from its image (imported into LXD once: lxd-image.ts) with its
 * config (instance-config.ts), root disk, /run/alacarte (run-dir.ts) and port relays
 * (port-relays.ts), started, and its command run in the background. Whatever fails on the way is
 * removed again.
 */
export class LeaseStart {
  /** The last instance start asked of LXD (see start()). */
  private startChain: Promise<void> = Promise.resolve();

  constructor(
    private readonly s: DriverState,
    private readonly io: LeaseIo,
    private readonly relays: PortRelays,
    private readonly removal: SandboxRemoval,
  ) {}

  /** The driver's start() (compute-driver.ts). */
  async start(spec: SandboxSpec, limits: SandboxLimits, deadline: Date): Promise<SandboxHandle> {
    if (!SANDBOX_ID_PATTERN.test(spec.leaseId)) throw new AlacarteError('invalid_request', 'bad lease id');
    if (!IMAGE_NAME_PATTERN.test(spec.image) || !existsSync(join(this.s.options.imagesDir, spec.image)))
      throw new AlacarteError('invalid_request', `no image ${spec.image}`);
    for (const p of spec.ports ?? [])
      if (!Number.isInteger(p) || p < 1 || p > 65_535)
        throw new AlacarteError('invalid_request', `bad port ${p}`);
    for (const [k, v] of Object.entries(spec.env ?? {}))
      if (!ENV_NAME_PATTERN.test(k) || v.includes('\0'))
        throw new AlacarteError('invalid_request', `bad env ${k}`);
    if (limits.network === 'egress')
      throw new AlacarteError('invalid_request', 'egress is not available on the LXD driver (no NIC)');
    // How the image runs (its environment, working directory, entrypoint and cmd, shell), as with
    // crun: without it an image pulled from a registry would start none of its own program.
    let image: ImageConfig;
    try {
      image = readImageConfig(join(this.s.options.imagesDir, spec.image));
    } catch (e) {
      throw new AlacarteError('start_failed', `image ${spec.image} has a config that cannot be read`, {
        cause: e,
      });
    }
    const name = this.s.instanceName(spec.leaseId);
    if (this.s.starting.has(spec.leaseId) || (await this.s.instance(name)))
      throw new AlacarteError('invalid_request', `a sandbox for ${spec.leaseId} exists already`);
    this.s.starting.add(spec.leaseId);
    try {
      let fingerprint: string;
      try {
        fingerprint = await ensureLxdImage(this.s.options.client, this.s.options.imagesDir, spec.image);
      } catch (e) {
        throw new AlacarteError('start_failed', `image ${spec.image} could not be imported into LXD`, {
          cause: e,
        });
      }
      const ports: Record<number, string> = {};
      const devices: Record<string, Record<string, string>> = {
        root: {
          type: 'disk',
          path: '/',
          pool: this.s.pool,
          size: rootDiskSize(
            this.s.rootSize,
            join(this.s.options.imagesDir, spec.image),
            limits.diskMib,
            this.s.footprints,
          ),
        },
      };
      if (this.s.delivery === 'bind') {
        writeLeaseDir(this.s.leaseDir(spec.leaseId), this.s.libDir, spec.leaseId, deadline);
        devices.run = {
          type: 'disk',
          source: this.s.leaseDir(spec.leaseId),
          path: IN_INSTANCE.runDir,
          readonly: 'true',
        };
      }
      for (const port of spec.ports ?? []) {
        const hostPort = await this.relays.publish(spec.leaseId, port);
        ports[port] = `http://127.0.0.1:${hostPort}`;
      }
      const config = instanceConfig(this.s.owner, spec, limits, deadline, ports, image);
      const client = this.s.options.client;
      try {
        // One instance made and started at a time: LXD 5.0 gives an isolated instance its id range
        // when it is made, and instances made at the same moment failed to start ("forkstart ...
        // exit status 1") once some twenty ran; one after another they never did.
        const made = this.startChain.then(async () => {
          await client.run('POST', '/1.0/instances', {
            name,
            type: 'container',
            ephemeral: true,
            // No profile: an operator's default profile may carry a NIC.
            profiles: [],
            config,
            devices,
            source: { type: 'image', fingerprint },
          });
          if (this.s.delivery === 'push')
            await pushRunDir(client, this.s.libDir, name, spec.leaseId, deadline);
          await client.run('PUT', `/1.0/instances/${name}/state`, { action: 'start', timeout: 30 });
        });
        this.startChain = made.then(
          () => undefined,
          () => undefined,
        );
        await made;
        // The lease's command, else the image's entrypoint and cmd (leaseArgv: docker run semantics).
        const argv = leaseArgv(image, spec.command);
        if (argv.length > 0) {
          const r = await this.io.exec(
            { leaseId: spec.leaseId },
            {
              // Through a script that exports the environment itself: a shell in between would drop
              // names such as IFS that it keeps to itself (crun's command.sh, init-script.ts).
              command: [
                IN_INSTANCE.busybox,
                'sh',
                '-c',
                commandFile(argv, { ...image.env, ...spec.env }, image.working_dir),
              ],
              background: true,
              timeoutMs: 30_000,
              maxOutputBytes: 4096,
            },
          );
          if (r.pid === undefined)
            throw new Error(`command did not start: ${r.stderr.toString().slice(0, 200)}`);
        }
      } catch (e) {
        await this.removal.remove(spec.leaseId);
        if (e instanceof AlacarteError) throw e;
        throw new AlacarteError('start_failed', `LXD could not start the sandbox: ${(e as Error).message}`, {
          cause: e,
        });
      }
      this.s.known.add(spec.leaseId);
      return { leaseId: spec.leaseId, deadline, ports };
    } finally {
      this.s.starting.delete(spec.leaseId);
    }
  }
}
