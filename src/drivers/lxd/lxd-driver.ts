import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  constants as fsConstants,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Duplex, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { AlacarteError } from '../../core/errors.js';
import { ENV_NAME_PATTERN, IMAGE_NAME_PATTERN, SANDBOX_ID_PATTERN } from '../../core/lease-request.js';
import { availableCapacity, defaultOvercommit, type OvercommitSettings } from '../capacity.js';
import { CappedBuffer, streamEnded as ended } from '../capped-output.js';
import type {
  AttachSession,
  ComputeDriver,
  DriverCapacity,
  ExecRequest,
  ExecResult,
  SandboxHandle,
  SandboxInfo,
  SandboxLimits,
  SandboxProcess,
  SandboxRef,
  SandboxSpec,
  SpawnRequest,
  TerminalSize,
} from '../compute-driver.js';
import { backgroundCommand, backgroundPid } from '../crun/background.js';
import { type DriverLogger, silentLogger } from '../crun/crun-options.js';
import { commandFile, deadlineFile, leaseFile } from '../crun/init-script.js';
import { ConnectionBudget } from '../crun/port-proxy.js';
import { ensureBusyboxImage } from '../crun/preflight.js';
import { installSftpServer } from '../crun/sftp-server.js';
import { newSealKey, SEAL_KEY_PATTERN, sealedMove } from './deadline-seal.js';
import {
  hangupScript,
  IN_INSTANCE,
  instanceInit,
  killTagScript,
  LXD_EXEC_DEFAULTS,
  rewriteScript,
} from './in-instance.js';
import { type LxdClient, LxdError } from './lxd-client.js';
import { type LxdExecProcess, lxdExec, resizeTerminal, sendSignal } from './lxd-exec.js';
import { ensureLxdImage } from './lxd-image.js';
import { lxdSeccompPolicy } from './lxd-seccomp.js';
import { type RootSizeKind, rootDiskSize, rootSizeKind } from './root-disk.js';

/** Settings of the LXD driver (config `driver: {kind: "lxd"}`). */
export interface LxdDriverOptions {
  client: LxdClient;
  /** The node's image store (crun's `<dataDir>/images`): root filesystems imported as LXD images. */
  imagesDir: string;
  /**
   * A host directory of the node: the programs every instance gets in /run/alacarte/bin (static
   * busybox, init, kill script, sftp-server) and, with `delivery: "bind"`, each instance's
   * /run/alacarte (lease.json, deadline, bin/), mounted read-only into it.
   */
  runtimeDir: string;
  /**
   * How /run/alacarte reaches an instance. `bind`: a read-only disk device of
   * `<runtimeDir>/<lease>`, which needs the instance on this machine (the tenant cannot change it).
   * `push`: the files are written into the instance through LXD's file API before it starts and
   * rewritten through exec, so the instance can be on any cluster member (the tenant's root can
   * change its own copy of lease.json and the deadline file, but not the deadline init enforces:
   * in-instance.ts). Default: `bind` on a local daemon that is not clustered, `push` otherwise.
   */
  delivery?: 'bind' | 'push';
  /** Tags this node's instances (config `user.alacarte.owner`), so list() sees only its own. */
  owner?: string;
  /** The storage pool of instances' root disks. */
  storagePool?: string;
  overcommit?: Partial<OvercommitSettings>;
  /** The host's static busybox, copied into every instance's /run/alacarte/bin. */
  busybox?: string;
  logger?: DriverLogger;
}

const INSTANCE_STATUS = z
  .enum(['Running', 'Stopped', 'Frozen', 'Error', 'Starting', 'Stopping', 'Ready'])
  .or(z.string());

/** The fields of GET /1.0/instances?recursion=1 the driver reads. */
const instanceSchema = z
  .object({
    name: z.string().max(63),
    status: INSTANCE_STATUS,
    created_at: z.string().optional(),
    config: z.record(z.string(), z.string()),
  })
  .loose();
type Instance = z.infer<typeof instanceSchema>;

const limitsSchema = z.object({
  vcpu: z.number(),
  memoryMib: z.number(),
  pids: z.number(),
  diskMib: z.number(),
});

const resourcesSchema = z
  .object({
    cpu: z.object({ total: z.number().int() }).loose(),
    memory: z.object({ total: z.number() }).loose(),
  })
  .loose();
const poolResourcesSchema = z
  .object({ space: z.object({ total: z.number(), used: z.number().optional() }).loose() })
  .loose();
const poolSchema = z.object({ driver: z.string().max(64) }).loose();
const clusterSchema = z.object({ enabled: z.boolean() }).loose();
const membersSchema = z
  .array(z.object({ server_name: z.string().max(63), status: z.string() }).loose())
  .max(1000);

const KEY = {
  owner: 'user.alacarte.owner',
  lease: 'user.alacarte.lease',
  deadline: 'user.alacarte.deadline',
  limits: 'user.alacarte.limits',
  ports: 'user.alacarte.ports',
  shell: 'user.alacarte.shell',
  env: 'user.alacarte.env',
  /** The number of the instance's last deadline move (deadline-seal.ts). */
  move: 'user.alacarte.move',
} as const;

/** Where start() puts the seal key in `raw.lxc` (the instance cannot read it; devlxd shows only user.*). */
const SEAL_KEY_IN_RAW_LXC = /ALACARTE_KEY=(-?[0-9]{1,19}:-?[0-9]{1,19}) /;

/**
 * Capabilities no process of an instance has (LXC's bounding set): CAP_SYS_ADMIN (mounts,
 * namespaces) and the other host-facing ones; CAP_SYS_PTRACE, without which no process of the
 * instance can read or write the memory of its non-dumpable init (in-instance.ts), whatever uid it
 * takes; CAP_SYS_BOOT, so that reboot(2) cannot restart the instance (seccomp refuses it too).
 */
const DROPPED_CAPABILITIES = 'sys_admin sys_module sys_rawio sys_time sys_ptrace sys_boot';

/** The id base of the node's image store (the crun driver's default), for the built-in image. */
const STORE_ID_BASE = 1_000_000;
/** How often watch() compares what runs with what ran; onExit follows an end within this long. */
const WATCH_INTERVAL_MS = 500;
/** A stopped instance younger than this may be one being started (by this node or another replica). */
const STARTING_GRACE_MS = 120_000;
/** Host totals (cluster members' CPU and memory) are read again after this long. */
const RESOURCES_TTL_MS = 30_000;
/** Rounds of stop-or-delete in remove() (about 200 ms apart) before it gives up. */
const REMOVE_ATTEMPTS = 50;
/** How long an attach's end waits for the terminal's last output to arrive. */
const OUTPUT_DRAIN_MS = 5000;
/** Tries (100 ms apart) to reach an init that has not opened its FIFO yet (delivery bind). */
const MOVE_ATTEMPTS = 100;
/** How long a deadline move inside an instance (delivery push) may take before it counts as failed. */
const MOVE_TIMEOUT_MS = 30_000;
/** Checks (200 ms apart) that an instance ended after a failed move into the past. */
const PAST_MOVE_CHECKS = 25;
/** Largest stdin an exec takes. */
const MAX_STDIN_BYTES = 16 << 20;

const notRunning = (leaseId: string) =>
  new AlacarteError('lease_not_running', `sandbox ${leaseId} is not running`);

/**
 * The ComputeDriver on LXD (issue 12): one unprivileged, ephemeral system container per lease,
 * placed by LXD (on a cluster, by its scheduler: no `target`), with `limits.cpu`,
 * `limits.cpu.allowance`, `limits.memory`, `limits.processes`, a root disk size, no NIC (loopback
 * only: egress offers are reported as not available) and `security.nesting=false`. Its PID 1 is a
 * small init that ends it at its deadline on its own (in-instance.ts), so a dead control plane
 * cannot leave free compute running. Exec, spawn, attach and connect go through LXD's exec API.
 *
 * The root disk size caps a lease's writes on a btrfs, zfs or lvm pool (on btrfs and lvm it covers
 * the image too, so the driver adds the image's footprint: root-disk.ts). LXD's `dir` pool records
 * the size but cannot enforce it (no quotas without project quotas on the host's file system):
 * create() warns when the pool is `dir`.
 */
export class LxdDriver implements ComputeDriver {
  readonly id = 'lxd';
  /** Every replica reaches the same daemon or cluster: its instances, by owner tag. */
  get sharedTarget(): string {
    return `lxd:${this.owner}`;
  }
  private readonly owner: string;
  private readonly pool: string;
  private readonly logger: DriverLogger;
  private readonly libDir: string;
  private readonly sftpCommand: string[] | undefined;
  private readonly starting = new Set<string>();
  private readonly budgets = new Map<string, ConnectionBudget>();
  private readonly watchers = new Set<(leaseId: string) => void>();
  private readonly known = new Set<string>();
  /** Host loopback servers of each lease's published ports (see publish()). */
  private readonly published = new Map<string, Server[]>();
  /** Per lease: sandbox port -> the loopback URL this process relays it on (see publish()). */
  private readonly relays = new Map<string, Map<number, string>>();
  /** Leases whose ports this process is starting to serve (servePorts()), so each is served once. */
  private readonly serving = new Map<string, Promise<void>>();
  private watchTimer: NodeJS.Timeout | undefined;
  /** The last instance start asked of LXD (see start()). */
  private startChain: Promise<void> = Promise.resolve();
  /** See LxdDriverOptions.delivery; settled by create(). */
  private delivery: 'bind' | 'push' = 'bind';
  private totals: { at: number; cpus: number; memoryMib: number; diskMib: number } | undefined;
  /** How the pool treats a root disk size; settled by create(). */
  private rootSize: RootSizeKind = 'whole';
  /** Image trees' footprints on the pool (see rootDiskSize), by path, inode and change time. */
  private readonly footprints = new Map<string, number>();

  private constructor(private readonly options: LxdDriverOptions) {
    this.owner = options.owner ?? 'alacarte';
    this.pool = options.storagePool ?? 'default';
    this.logger = options.logger ?? silentLogger;
    this.libDir = join(options.runtimeDir, '.lib');
    mkdirSync(this.libDir, { recursive: true, mode: 0o755 });
    // Replaced, not rewritten: running instances hold hard links to these (a busybox being run
    // cannot be written: ETXTBSY), and replicas sharing the directory may write them at once.
    const replace = (file: string, write: (tmp: string) => void) => {
      const tmp = join(this.libDir, `.${file}.${process.pid}.${randomBytes(4).toString('hex')}`);
      write(tmp);
      renameSync(tmp, join(this.libDir, file));
    };
    replace('busybox', (tmp) => copyFileSync(options.busybox ?? '/bin/busybox', tmp));
    // Executable but not readable by init's uid: the kernel then makes init non-dumpable.
    replace('busybox-init', (tmp) => {
      copyFileSync(options.busybox ?? '/bin/busybox', tmp);
      chmodSync(tmp, 0o711);
    });
    replace('init.sh', (tmp) => writeFileSync(tmp, instanceInit(), { mode: 0o644 }));
    replace('kill-tag.sh', (tmp) => writeFileSync(tmp, killTagScript(), { mode: 0o644 }));
    const sftp = installSftpServer(this.libDir);
    this.sftpCommand = 'command' in sftp ? sftp.command : undefined;
    if ('missing' in sftp) this.logger.warn(`alacarte: no SFTP in LXD sandboxes: ${sftp.missing}`);
  }

  /**
   * Checks that LXD answers and that the storage pool exists; throws with the reason otherwise.
   * Warns (logger) when the pool cannot enforce disk sizes (`dir`): a lease could fill it.
   */
  static async create(options: LxdDriverOptions): Promise<LxdDriver> {
    const driver = new LxdDriver(options);
    // The built-in image, as the crun driver builds it (owners shifted by its id base, which the
    // import into LXD undoes).
    ensureBusyboxImage(options.imagesDir, options.busybox ?? '/bin/busybox', STORE_ID_BASE, driver.logger);
    const pool = await options.client.get(
      `/1.0/storage-pools/${encodeURIComponent(driver.pool)}`,
      poolSchema,
    );
    driver.rootSize = rootSizeKind(pool.driver);
    if (driver.rootSize === 'unenforced')
      driver.logger.warn(
        `alacarte: LXD storage pool "${driver.pool}" is ${pool.driver}, which does not enforce disk sizes: a lease can write past its offer's disk until the pool's file system is full. Use a btrfs, zfs or lvm pool (src/drivers/lxd/README.md).`,
      );
    const clustered = await options.client
      .get('/1.0/cluster', clusterSchema)
      .then((c) => c.enabled)
      .catch(() => false);
    driver.delivery = options.delivery ?? (options.client.local && !clustered ? 'bind' : 'push');
    return driver;
  }

  /** The instance name for a lease: LXD names are host names, lease ids are not. */
  instanceName(leaseId: string): string {
    return `alc-${createHash('sha256').update(`${this.owner}\0${leaseId}`).digest('hex').slice(0, 24)}`;
  }

  private leaseDir(leaseId: string): string {
    return join(this.options.runtimeDir, leaseId);
  }

  async capacity(): Promise<DriverCapacity> {
    const totals = await this.readTotals();
    // What leases hold: running instances and those being started (a stopped one is on its way out).
    const counted = (await this.instances()).filter(
      (i) => i.status !== 'Stopped' || this.starting.has(i.config[KEY.lease] ?? ''),
    );
    const running = counted.map((i) => limitsOf(i)).filter((l) => l !== undefined);
    const leases = new Set<string>();
    for (const i of counted) {
      const lease = i.config[KEY.lease];
      if (lease && limitsOf(i)) leases.add(lease);
    }
    const settings = {
      ...defaultOvercommit({ cpus: totals.cpus, memoryMib: totals.memoryMib }),
      diskBudgetMib: totals.diskMib,
      ...this.options.overcommit,
    };
    // No NIC: egress offers cannot run on LXD instances (issue 12 allows "no NIC").
    return { ...availableCapacity(totals, settings, running), egress: false, leases };
  }

  /** CPU and memory of every cluster member (or of the one daemon), and the pool's size. */
  private async readTotals() {
    if (this.totals && Date.now() - this.totals.at < RESOURCES_TTL_MS) return this.totals;
    const client = this.options.client;
    const cluster = await client.get('/1.0/cluster', clusterSchema).catch(() => ({ enabled: false }));
    const targets = cluster.enabled
      ? (await client.get('/1.0/cluster/members?recursion=1', membersSchema))
          .filter((m) => m.status === 'Online')
          .map((m) => `?target=${encodeURIComponent(m.server_name)}`)
      : [''];
    let cpus = 0;
    let memoryMib = 0;
    for (const target of targets) {
      const r = await client.get(`/1.0/resources${target}`, resourcesSchema);
      cpus += r.cpu.total;
      memoryMib += Math.floor(r.memory.total / 2 ** 20);
    }
    const pool = await client.get(
      `/1.0/storage-pools/${encodeURIComponent(this.pool)}/resources`,
      poolResourcesSchema,
    );
    this.totals = { at: Date.now(), cpus, memoryMib, diskMib: Math.floor(pool.space.total / 2 ** 20) };
    return this.totals;
  }

  async start(spec: SandboxSpec, limits: SandboxLimits, deadline: Date): Promise<SandboxHandle> {
    if (!SANDBOX_ID_PATTERN.test(spec.leaseId)) throw new AlacarteError('invalid_request', 'bad lease id');
    if (!IMAGE_NAME_PATTERN.test(spec.image) || !existsSync(join(this.options.imagesDir, spec.image)))
      throw new AlacarteError('invalid_request', `no image ${spec.image}`);
    for (const p of spec.ports ?? [])
      if (!Number.isInteger(p) || p < 1 || p > 65_535)
        throw new AlacarteError('invalid_request', `bad port ${p}`);
    for (const [k, v] of Object.entries(spec.env ?? {}))
      if (!ENV_NAME_PATTERN.test(k) || v.includes('\0'))
        throw new AlacarteError('invalid_request', `bad env ${k}`);
    if (limits.network === 'egress')
      throw new AlacarteError('invalid_request', 'egress is not available on the LXD driver (no NIC)');
    const name = this.instanceName(spec.leaseId);
    if (this.starting.has(spec.leaseId) || (await this.instance(name)))
      throw new AlacarteError('invalid_request', `a sandbox for ${spec.leaseId} exists already`);
    this.starting.add(spec.leaseId);
    try {
      let fingerprint: string;
      try {
        fingerprint = await ensureLxdImage(this.options.client, this.options.imagesDir, spec.image);
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
          pool: this.pool,
          size: rootDiskSize(
            this.rootSize,
            join(this.options.imagesDir, spec.image),
            limits.diskMib,
            this.footprints,
          ),
        },
      };
      if (this.delivery === 'bind') {
        this.writeLeaseDir(spec.leaseId, deadline);
        devices.run = {
          type: 'disk',
          source: this.leaseDir(spec.leaseId),
          path: IN_INSTANCE.runDir,
          readonly: 'true',
        };
      }
      for (const port of spec.ports ?? []) {
        const hostPort = await this.publish(spec.leaseId, port);
        ports[port] = `http://127.0.0.1:${hostPort}`;
      }
      const cpus = Math.max(1, Math.ceil(limits.vcpu));
      const config: Record<string, string> = {
        [KEY.owner]: this.owner,
        [KEY.lease]: spec.leaseId,
        [KEY.deadline]: deadline.toISOString(),
        [KEY.limits]: JSON.stringify({
          vcpu: limits.vcpu,
          memoryMib: limits.memoryMib,
          pids: limits.pids,
          diskMib: limits.diskMib,
        }),
        [KEY.ports]: JSON.stringify(ports),
        'limits.cpu': String(cpus),
        // CPU time per period: 0.5 vCPU = 500 ms each second.
        'limits.cpu.allowance': `${Math.max(10, Math.round(limits.vcpu * 1000))}ms/1000ms`,
        'limits.memory': `${limits.memoryMib}MiB`,
        'limits.memory.enforce': 'hard',
        'limits.memory.swap': 'false',
        'limits.processes': String(limits.pids),
        'security.nesting': 'false',
        // crun's seccomp profile: its deny list, no new namespaces from inside (unshare(2), setns(2),
        // clone(2) with namespace flags) and no lower priority for init (lxd-seccomp.ts).
        'raw.seccomp': lxdSeccompPolicy(),
        'security.privileged': 'false',
        // Each instance its own range of host uids and gids: root of one is nobody in another.
        'security.idmap.isolated': 'true',
        'boot.autostart': 'false',
        // init with an empty environment but for the seal key of its deadline moves, and the
        // deadline as its argument (in-instance.ts): no lease variable can change how it runs, and
        // the instance cannot read either. A sandbox, not a system to administer: without
        // DROPPED_CAPABILITIES, for init and every exec alike.
        'raw.lxc': [
          `lxc.init.cmd = ${IN_INSTANCE.busybox} env -i ALACARTE_KEY=${newSealKey()} ${IN_INSTANCE.busybox} sh ${IN_INSTANCE.init} ${deadlineSeconds(deadline)}`,
          `lxc.cap.drop = ${DROPPED_CAPABILITIES}`,
          // The instance's cgroups read-only (LXD mounts its own one writable): root inside could
          // otherwise move init into a cgroup of its own and freeze it, or starve it of CPU. Its
          // programs still read their limits there. \`force\`: mounted by LXC whatever the
          // capabilities, never left to init.
          'lxc.mount.auto =',
          'lxc.mount.auto = proc:rw sys:rw cgroup:ro:force',
        ].join('\n'),
      };
      // Kept as data and handed to each exec, not as LXD's `environment.*` keys: LXC applies those
      // to its own start too, where names such as PATH or IFS could break it.
      config[KEY.env] = JSON.stringify(spec.env ?? {});
      const client = this.options.client;
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
          if (this.delivery === 'push') await this.pushRunDir(name, spec.leaseId, deadline);
          await client.run('PUT', `/1.0/instances/${name}/state`, { action: 'start', timeout: 30 });
        });
        this.startChain = made.then(
          () => undefined,
          () => undefined,
        );
        await made;
        if (spec.command && spec.command.length > 0) {
          const r = await this.exec(
            { leaseId: spec.leaseId },
            {
              // Through a script that exports the environment itself: a shell in between would drop
              // names such as IFS that it keeps to itself (crun's command.sh, init-script.ts).
              command: [IN_INSTANCE.busybox, 'sh', '-c', commandFile(spec.command, spec.env ?? {})],
              background: true,
              timeoutMs: 30_000,
              maxOutputBytes: 4096,
            },
          );
          if (r.pid === undefined)
            throw new Error(`command did not start: ${r.stderr.toString().slice(0, 200)}`);
        }
      } catch (e) {
        await this.remove(spec.leaseId);
        if (e instanceof AlacarteError) throw e;
        throw new AlacarteError('start_failed', `LXD could not start the sandbox: ${(e as Error).message}`, {
          cause: e,
        });
      }
      this.known.add(spec.leaseId);
      return { leaseId: spec.leaseId, deadline, ports };
    } finally {
      this.starting.delete(spec.leaseId);
    }
  }

  /** /run/alacarte on the host: deadline, lease.json and bin/ (hard links to the shared copies). */
  private writeLeaseDir(leaseId: string, deadline: Date): void {
    const dir = this.leaseDir(leaseId);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'bin'), { recursive: true, mode: 0o755 });
    linkTree(this.libDir, join(dir, 'bin'));
    // Writable for init to open it read-write (no blocking open); a tenant writing to it only cuts
    // init's one-second wait short.
    execFileSync('mkfifo', ['-m', '0666', join(dir, 'bin', 'wait')]);
    this.writeDeadline(leaseId, deadline);
  }

  /**
   * /run/alacarte written into a created, not yet started instance through LXD's file API, on
   * whichever member holds it: bin/ (the shared copies, their modes kept), deadline and lease.json.
   * Its FIFO is made by init itself (the file API makes no FIFOs).
   */
  private async pushRunDir(name: string, leaseId: string, deadline: Date): Promise<void> {
    await this.push(name, IN_INSTANCE.runDir, undefined, 0o755);
    const walk = async (from: string, to: string): Promise<void> => {
      await this.push(name, to, undefined, 0o755);
      for (const entry of readdirSync(from, { withFileTypes: true })) {
        const src = join(from, entry.name);
        // init copies busybox itself (in-instance.ts): a second upload of it would slow each start.
        if (`${to}/${entry.name}` === IN_INSTANCE.initBusybox) continue;
        if (entry.isDirectory()) await walk(src, `${to}/${entry.name}`);
        else await this.push(name, `${to}/${entry.name}`, readFileSync(src), statSync(src).mode & 0o755);
      }
    };
    await walk(this.libDir, `${IN_INSTANCE.runDir}/bin`);
    await this.push(name, `${IN_INSTANCE.runDir}/deadline`, Buffer.from(deadlineFile(deadline)), 0o644);
    await this.push(
      name,
      `${IN_INSTANCE.runDir}/lease.json`,
      Buffer.from(leaseFile(leaseId, deadline)),
      0o644,
    );
  }

  /** One file (or, without content, a directory) into an instance, owned by its root. */
  private async push(name: string, path: string, content: Buffer | undefined, mode: number): Promise<void> {
    await this.options.client.upload(
      `/1.0/instances/${name}/files?path=${encodeURIComponent(path)}`,
      Readable.from(content ? [content] : []),
      {
        'content-type': 'application/octet-stream',
        'x-lxd-type': content ? 'file' : 'directory',
        'x-lxd-uid': '0',
        'x-lxd-gid': '0',
        'x-lxd-mode': mode.toString(8).padStart(4, '0'),
        'x-lxd-write': 'overwrite',
      },
    );
  }

  /**
   * Serves a sandbox port on the host's loopback (at `hostPort`, or a free one): each connection
   * is relayed through connect() (the exec API, `nc` inside), so it works without a NIC and on any
   * cluster member. LXD's proxy device would do it inside LXD, but it needs the member's host to
   * be the node's. Resolves with the port listened on.
   */
  private publish(leaseId: string, port: number, hostPort = 0): Promise<number> {
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {});
      this.connect({ leaseId }, port).then(
        (inside) => {
          inside.on('error', () => socket.destroy());
          socket.pipe(inside);
          inside.pipe(socket);
          socket.once('close', () => inside.destroy());
          inside.once('close', () => socket.destroy());
        },
        () => socket.destroy(),
      );
    });
    // Held before it listens, so that an unpublish() meanwhile closes it too.
    const servers = this.published.get(leaseId) ?? [];
    servers.push(server);
    this.published.set(leaseId, servers);
    return new Promise((resolve, reject) => {
      server.once('error', (e) => {
        const held = this.published.get(leaseId);
        if (held?.includes(server)) held.splice(held.indexOf(server), 1);
        server.close();
        reject(e);
      });
      server.listen(hostPort, '127.0.0.1', () => {
        const listened = (server.address() as { port: number }).port;
        // Unpublished while it was starting to listen: nothing to record, and it is closed.
        if (this.published.get(leaseId)?.includes(server)) {
          const relays = this.relays.get(leaseId) ?? new Map<number, string>();
          relays.set(port, `http://127.0.0.1:${listened}`);
          this.relays.set(leaseId, relays);
        }
        resolve(listened);
      });
    });
  }

  private unpublish(leaseId: string): void {
    for (const server of this.published.get(leaseId) ?? []) server.close();
    this.published.delete(leaseId);
    this.relays.delete(leaseId);
  }

  /**
   * Serves those of `ports` (a sandbox's declared ports, as its start published them) that this
   * process does not relay yet: a sandbox another replica started, or one found after a restart.
   * Each goes on the host port its URL names when that is free here (a restarted node's earlier
   * answers stay valid), else on any free one (another replica on this host holds it). One at a
   * time per lease, so concurrent callers share the work. Failures are logged; the port stays
   * unserved until the next call.
   */
  private servePorts(leaseId: string, ports: Record<number, string>): Promise<void> {
    const current = this.serving.get(leaseId);
    if (current) return current;
    const work = (async () => {
      for (const [port, url] of Object.entries(ports)) {
        if (this.relays.get(leaseId)?.has(Number(port))) continue;
        const named = Number(URL.canParse(url) ? new URL(url).port : 0);
        await this.publish(leaseId, Number(port), named)
          .catch(() => this.publish(leaseId, Number(port)))
          .catch((e: Error) =>
            this.logger.warn(`alacarte: port ${port} of ${leaseId} not served here: ${e.message}`),
          );
      }
      // Watched from now on: its relays go when its instance does (poll()).
      this.known.add(leaseId);
    })().finally(() => this.serving.delete(leaseId));
    this.serving.set(leaseId, work);
    return work;
  }

  /**
   * The loopback URL this process relays a running sandbox's declared `port` on, serving its ports
   * first when it does not yet (ComputeDriver.relayPort): a lease started through another replica
   * is reachable through this one at once, not only after its next list(). Undefined for a port
   * the sandbox did not declare; `lease_not_running` when its instance is gone.
   */
  async relayPort(sandbox: SandboxRef, port: number): Promise<string | undefined> {
    const relayed = this.relays.get(sandbox.leaseId)?.get(port);
    if (relayed) return relayed;
    const i = await this.running(sandbox.leaseId);
    const ports = parsePorts(i.config[KEY.ports]);
    if (!(port in ports)) return undefined;
    // Its own start is still publishing them: that start's URLs, once listening.
    if (!this.starting.has(sandbox.leaseId)) await this.servePorts(sandbox.leaseId, ports);
    return this.relays.get(sandbox.leaseId)?.get(port);
  }

  /**
   * deadline and lease.json rewritten in the host directory (delivery `bind`), then `move` (a sealed
   * line, deadline-seal.ts) written to init's FIFO, when one is given: without waiting, since
   * init holds the FIFO open (ENXIO: nobody has it open, init not yet or no more; EAGAIN: full,
   * which only a tenant writing to it and init not reading can cause).
   */
  private writeDeadline(leaseId: string, deadline: Date, move?: string): void {
    const dir = this.leaseDir(leaseId);
    // Renamed into place, so a reader never sees half a file.
    for (const [file, text] of [
      ['deadline', deadlineFile(deadline)],
      ['lease.json', leaseFile(leaseId, deadline)],
    ] as const) {
      writeFileSync(join(dir, `.${file}.tmp`), text, { mode: 0o644 });
      renameSync(join(dir, `.${file}.tmp`), join(dir, file));
    }
    if (move === undefined) return;
    const fd = openSync(join(dir, 'bin', 'wait'), fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    try {
      // Twice in one write: see rewriteScript (in-instance.ts).
      writeSync(fd, `${move}\n${move}\n`);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * writeDeadline with a move, tried again (bounded) while init has not opened its FIFO yet: an
   * instance LXD reports running may not have reached its init's first lines.
   */
  private async moveBound(leaseId: string, deadline: Date, move: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        this.writeDeadline(leaseId, deadline, move);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENXIO' || attempt >= MOVE_ATTEMPTS) throw e;
      }
      await sleep(100);
      if (!(await this.isRunning({ leaseId }))) throw notRunning(leaseId);
    }
  }

  /** The instance of a name when it is this node's, or undefined. */
  private async instance(name: string): Promise<Instance | undefined> {
    try {
      const i = await this.options.client.get(`/1.0/instances/${name}`, instanceSchema);
      return i.config[KEY.owner] === this.owner ? i : undefined;
    } catch (e) {
      if (e instanceof LxdError && e.status === 404) return undefined;
      throw e;
    }
  }

  /** This node's instances, read from LXD. */
  private async instances(): Promise<Instance[]> {
    const all = await this.options.client.get(
      '/1.0/instances?recursion=1',
      z.array(instanceSchema).max(100_000),
    );
    return all.filter((i) => i.config[KEY.owner] === this.owner);
  }

  private async running(leaseId: string): Promise<Instance> {
    if (!SANDBOX_ID_PATTERN.test(leaseId)) throw notRunning(leaseId);
    const i = await this.instance(this.instanceName(leaseId));
    if (i?.status !== 'Running') throw notRunning(leaseId);
    return i;
  }

  /** Starts a process through the exec API, as lease_not_running when the instance is gone. */
  private async startProcess(
    leaseId: string,
    command: string[],
    env: Record<string, string> = {},
    terminal?: TerminalSize,
    relayOutput = false,
  ): Promise<LxdExecProcess> {
    if (command.length === 0 || command.some((a) => a.includes('\0')))
      throw new AlacarteError('invalid_request', 'bad command');
    for (const [k, v] of Object.entries(env))
      if (!ENV_NAME_PATTERN.test(k) || v.includes('\0'))
        throw new AlacarteError('invalid_request', `bad env ${k}`);
    const i = await this.running(leaseId);
    try {
      return await lxdExec(this.options.client, this.instanceName(leaseId), {
        command,
        env: { ...LXD_EXEC_DEFAULTS, ...leaseEnv(i), ...env },
        terminal,
        relayOutput,
      });
    } catch (e) {
      if (!(await this.isRunning({ leaseId }))) throw notRunning(leaseId);
      throw new AlacarteError('internal', `LXD exec failed: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * The deadline moved inside the instance (delivery `push`): deadline and lease.json each written
   * beside and renamed over the old one, so the tenant reads a whole file, old or new, then `move`,
   * a sealed line (deadline-seal.ts), to init's FIFO (in-instance.ts, rewriteScript).
   */
  private async rewriteInside(leaseId: string, deadline: Date, move: string): Promise<void> {
    const p = await lxdExec(this.options.client, this.instanceName(leaseId), {
      command: [
        IN_INSTANCE.busybox,
        'sh',
        '-c',
        rewriteScript(),
        'alacarte-deadline',
        deadlineFile(deadline),
        leaseFile(leaseId, deadline),
        move,
      ],
      env: {},
    });
    p.stdin.end();
    p.stdout?.resume();
    const stderr = new CappedBuffer(1024);
    p.stderr?.on('data', (b: Buffer) => stderr.push(b));
    // Bounded here, not by a program inside: a FIFO a tenant filled would hold the write.
    const timer = setTimeout(() => sendSignal(p.control, 9), MOVE_TIMEOUT_MS);
    const code = await p.exited.finally(() => clearTimeout(timer));
    if (code !== 0) {
      if (!(await this.isRunning({ leaseId }))) throw notRunning(leaseId);
      throw new AlacarteError(
        'internal',
        `deadline not rewritten in ${leaseId}: ${stderr.value().toString()}`,
      );
    }
  }

  /** Kills everything an exec started (in-instance.ts); best effort, the instance may be gone. */
  private async killTag(leaseId: string, tag: string): Promise<void> {
    // The script exits 1 when its last round still found some (killTagScript): again, a few times.
    for (let i = 0; i < 5; i++) {
      if ((await this.runBestEffort(leaseId, [IN_INSTANCE.busybox, 'sh', IN_INSTANCE.kill, tag])) !== 1)
        return;
    }
  }

  /**
   * Runs one of the driver's own commands in the instance to its end, no input, its output read
   * and dropped; a failure (the instance gone already) is ignored, as the callers' work is then done.
   * Resolves with the command's exit code, undefined when it could not run.
   */
  private async runBestEffort(leaseId: string, command: string[]): Promise<number | undefined> {
    try {
      const p = await lxdExec(this.options.client, this.instanceName(leaseId), { command, env: {} });
      p.stdin.end();
      p.stdout?.resume();
      p.stderr?.resume();
      return await p.exited;
    } catch {
      // gone already
      return undefined;
    }
  }

  async exec(sandbox: SandboxRef, request: ExecRequest): Promise<ExecResult> {
    const command = request.background ? backgroundCommand(request.command) : request.command;
    const stdin = request.stdin === undefined ? undefined : Buffer.from(request.stdin);
    if (stdin && stdin.length > MAX_STDIN_BYTES)
      throw new AlacarteError('invalid_request', 'stdin too large');
    // Ends when the command does, as crun's: what it left running keeps its output (drained inside).
    const p = await this.startProcess(sandbox.leaseId, command, request.env, undefined, true);
    const stdout = new CappedBuffer(request.maxOutputBytes);
    const stderr = new CappedBuffer(request.maxOutputBytes);
    p.stdout?.on('data', (b: Buffer) => stdout.push(b));
    p.stderr?.on('data', (b: Buffer) => stderr.push(b));
    p.stdin.end(stdin);
    let timedOut = false;
    let killing: Promise<void> | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      sendSignal(p.control, 9);
      killing = this.killTag(sandbox.leaseId, p.tag);
    }, request.timeoutMs);
    try {
      const [code] = await Promise.all([p.exited, ended(p.stdout), ended(p.stderr)]);
      // A timed-out exec returns once all it started is gone, not while its processes still count.
      await killing;
      const result: ExecResult = {
        exitCode: timedOut ? 137 : code,
        stdout: stdout.value(),
        stderr: stderr.value(),
        truncated: stdout.truncated || stderr.truncated,
        timedOut,
      };
      if (request.background) {
        const pid = backgroundPid(result);
        return pid === undefined ? result : { ...result, stdout: Buffer.alloc(0), pid };
      }
      return result;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Ends when the command does, as crun's: a job it started (`server &` in an SSH command) keeps
   * running, its output drained inside the instance (in-instance.ts, RELAYED_EXEC_SCRIPT), while
   * everything the command wrote before it exited still reaches the reader, at the reader's pace.
   */
  async spawn(sandbox: SandboxRef, request: SpawnRequest): Promise<SandboxProcess> {
    return this.spawnProcess(sandbox, request, true);
  }

  /**
   * spawn(), `relayOutput` as lxdExec takes it: off for the driver's own programs (sftp-server, the
   * relay of a port), which start nothing that could hold their output, so as to spare the lease's
   * pids the two relays.
   */
  private async spawnProcess(
    sandbox: SandboxRef,
    request: SpawnRequest,
    relayOutput: boolean,
  ): Promise<SandboxProcess> {
    const p = await this.startProcess(sandbox.leaseId, request.command, request.env, undefined, relayOutput);
    const stdout = p.stdout as Duplex;
    const stderr = p.stderr as Duplex;
    let killed = false;
    let hungUp = false;
    const exited = Promise.all([p.exited, ended(stdout), ended(stderr)]).then(([code]) =>
      killed ? 137 : code,
    );
    return {
      stdin: p.stdin,
      stdout,
      stderr,
      exited,
      kill: () => {
        if (killed) return;
        killed = true;
        sendSignal(p.control, 9);
        void this.killTag(sandbox.leaseId, p.tag);
      },
      hangup: () => {
        if (hungUp || killed) return;
        hungUp = true;
        p.stdin.destroy();
        // Read and dropped from now on: a job the command left keeps running (the relays drain it).
        for (const s of [stdout, stderr]) {
          s.removeAllListeners('data');
          s.unpipe();
          s.resume();
        }
        if (!relayOutput) {
          // The driver's own programs (sftp-server, a port's relay) start nothing: ended outright.
          sendSignal(p.control, 9);
          return;
        }
        void this.hangupCommand(sandbox.leaseId, p.tag);
      },
    };
  }

  /** SIGHUPs the command of the exec tagged `tag` (in-instance.ts, hangupScript); best effort. */
  private async hangupCommand(leaseId: string, tag: string): Promise<void> {
    await this.runBestEffort(leaseId, [
      IN_INSTANCE.busybox,
      'sh',
      '-c',
      hangupScript(),
      'alacarte-hangup',
      tag,
    ]);
  }

  async sftp(sandbox: SandboxRef): Promise<SandboxProcess> {
    await this.running(sandbox.leaseId);
    if (!this.sftpCommand) throw new AlacarteError('not_found', 'this node has no SFTP server');
    return this.spawnProcess(sandbox, { command: this.sftpCommand }, false);
  }

  async connect(sandbox: SandboxRef, port: number): Promise<Duplex> {
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      throw new AlacarteError('invalid_request', `bad port ${port}`);
    await this.running(sandbox.leaseId);
    let budget = this.budgets.get(sandbox.leaseId);
    if (!budget) {
      budget = new ConnectionBudget();
      this.budgets.set(sandbox.leaseId, budget);
    }
    if (!budget.take()) throw new AlacarteError('rate_limited', 'too many connections to this lease');
    let p: SandboxProcess;
    try {
      p = await this.spawnProcess(
        sandbox,
        { command: [IN_INSTANCE.busybox, 'nc', '127.0.0.1', String(port)] },
        false,
      );
    } catch (e) {
      budget.release();
      throw e;
    }
    p.stderr.resume();
    const out = p.stdout;
    const stream = new Duplex({
      read() {
        out.resume();
      },
      write(chunk: Buffer, _encoding, callback) {
        if (p.stdin.write(chunk)) callback();
        else p.stdin.once('drain', () => callback());
      },
      // The end of input is not passed on: nc would quit before the answer.
      final(callback) {
        callback();
      },
      destroy(err, callback) {
        p.kill();
        callback(err);
      },
    });
    out.on('data', (chunk: Buffer) => {
      if (!stream.push(chunk)) out.pause();
    });
    out.once('end', () => stream.push(null));
    let released = false;
    stream.once('close', () => {
      if (!released) budget.release();
      released = true;
      p.kill();
    });
    return stream;
  }

  async attach(sandbox: SandboxRef, size: TerminalSize, command?: string[]): Promise<AttachSession> {
    if (!validSize(size)) throw new AlacarteError('invalid_request', 'bad terminal size');
    const i = await this.running(sandbox.leaseId);
    const p = await this.startProcess(
      sandbox.leaseId,
      command ?? [i.config[KEY.shell] ?? '/bin/sh'],
      { TERM: 'xterm-256color' },
      size,
    );
    let closed = false;
    return {
      stream: p.stdin,
      resize: async (next) => {
        if (!validSize(next)) throw new AlacarteError('invalid_request', 'bad terminal size');
        await resizeTerminal(p.control, next.cols, next.rows);
      },
      // Once the terminal's last output is through too: LXD may answer the operation's end before
      // its websocket has delivered what the shell wrote last. Bounded, as nobody may be reading.
      exited: p.exited.then(async (code) => {
        await Promise.race([ended(p.stdin), sleep(OUTPUT_DRAIN_MS)]);
        return closed ? 137 : code;
      }),
      close: () => {
        if (closed) return;
        closed = true;
        sendSignal(p.control, 9);
        void this.killTag(sandbox.leaseId, p.tag);
        p.stdin.destroy();
      },
    };
  }

  async setDeadline(sandbox: SandboxRef, deadline: Date): Promise<void> {
    const i = await this.running(sandbox.leaseId);
    const key = SEAL_KEY_IN_RAW_LXC.exec(i.config['raw.lxc'] ?? '')?.[1];
    if (!key || !SEAL_KEY_PATTERN.test(key))
      throw new AlacarteError('internal', `sandbox ${sandbox.leaseId} has no deadline seal key`);
    // Above every earlier move, whichever replica made it (each records its number), and above the
    // clock, so a replica that never saw the instance still counts up.
    const last = Number(i.config[KEY.move] ?? 0);
    const move = Math.max(Date.now(), Number.isSafeInteger(last) ? last + 1 : 0);
    const line = sealedMove(key, deadlineSeconds(deadline), move);
    // init's move before the record: it is what holds without a control plane.
    try {
      if (this.delivery === 'bind') await this.moveBound(sandbox.leaseId, deadline, line);
      else await this.rewriteInside(sandbox.leaseId, deadline, line);
      await this.options.client.call('PATCH', `/1.0/instances/${this.instanceName(sandbox.leaseId)}`, {
        config: { [KEY.deadline]: deadline.toISOString(), [KEY.move]: String(move) },
      });
    } catch (e) {
      // A deadline already past ends the instance at once (its init takes the move at once),
      // possibly before the rewrite's exec or the record could finish: that end, which LXD may
      // show a moment later, is the move taking effect.
      if (deadline.getTime() <= Date.now()) {
        for (let i = 0; i < PAST_MOVE_CHECKS; i++) {
          if (!(await this.isRunning(sandbox))) return;
          await sleep(200);
        }
      }
      throw e;
    }
  }

  async isRunning(sandbox: SandboxRef): Promise<boolean> {
    if (!SANDBOX_ID_PATTERN.test(sandbox.leaseId)) return false;
    const i = await this.instance(this.instanceName(sandbox.leaseId)).catch(() => undefined);
    return i?.status === 'Running';
  }

  /**
   * The host pid of an instance's init (LXD's instance state), or undefined when it does not run
   * here; for checks from the host (the isolation tests), meaningful on the local daemon only.
   */
  async initPid(leaseId: string): Promise<number | undefined> {
    if (!(await this.isRunning({ leaseId }))) return undefined;
    const state = await this.options.client
      .get(`/1.0/instances/${this.instanceName(leaseId)}/state`, z.object({ pid: z.number().int() }).loose())
      .catch(() => undefined);
    return state && state.pid > 0 ? state.pid : undefined;
  }

  /** The instance's cgroup below each controller's root (LXC's naming), for checks from the host. */
  cgroupPath(leaseId: string): string {
    return `lxc.payload.${this.instanceName(leaseId)}`;
  }

  watch(onExit: (leaseId: string) => void): () => void {
    this.watchers.add(onExit);
    if (!this.watchTimer) {
      this.watchTimer = setInterval(() => void this.poll(), WATCH_INTERVAL_MS);
      this.watchTimer.unref();
    }
    return () => {
      this.watchers.delete(onExit);
      if (this.watchers.size === 0 && this.watchTimer) {
        clearInterval(this.watchTimer);
        this.watchTimer = undefined;
      }
    };
  }

  private polling = false;
  private async poll(): Promise<void> {
    if (this.polling || this.known.size === 0) return;
    this.polling = true;
    try {
      const running = new Set(
        (await this.instances()).filter((i) => i.status === 'Running').map((i) => i.config[KEY.lease]),
      );
      for (const leaseId of [...this.known]) {
        if (running.has(leaseId) || this.starting.has(leaseId)) continue;
        this.known.delete(leaseId);
        // Its relays lead nowhere now; the replica that stops it may be another one.
        this.unpublish(leaseId);
        for (const w of this.watchers) w(leaseId);
      }
    } catch (e) {
      this.logger.warn(`alacarte: LXD watch could not list instances: ${(e as Error).message}`);
    } finally {
      this.polling = false;
    }
  }

  async stop(sandbox: SandboxRef): Promise<void> {
    if (!SANDBOX_ID_PATTERN.test(sandbox.leaseId)) return;
    await this.remove(sandbox.leaseId);
  }

  /** Stops and deletes the instance (ephemeral: stopping deletes it), then its host directory. */
  private async remove(leaseId: string): Promise<void> {
    const client = this.options.client;
    const name = this.instanceName(leaseId);
    // Bounded: LXD deletes an ephemeral instance itself right after it stops, so a DELETE of ours
    // may meet that one; the host directory goes only once the instance is gone.
    let gone = false;
    for (let attempt = 0; attempt < REMOVE_ATTEMPTS && !gone; attempt++) {
      const i = await this.instance(name);
      gone = i === undefined;
      if (!i) break;
      if (attempt > 0) await sleep(200);
      try {
        if (i.status === 'Running' || i.status === 'Frozen')
          await client.run('PUT', `/1.0/instances/${name}/state`, {
            action: 'stop',
            force: true,
            timeout: 30,
          });
        else await client.run('DELETE', `/1.0/instances/${name}`, undefined);
      } catch (e) {
        // Gone meanwhile (a concurrent stop, or LXD deleting the ephemeral instance): check again.
        if (!(e instanceof LxdError)) throw e;
      }
    }
    this.unpublish(leaseId);
    this.budgets.delete(leaseId);
    // Still there (LXD busy): its directory stays for a later list() to clean up with it.
    if (gone || !(await this.instance(name)))
      rmSync(this.leaseDir(leaseId), { recursive: true, force: true });
    else this.logger.warn(`alacarte: LXD instance of ${leaseId} not removed yet; list() retries`);
  }

  async list(): Promise<SandboxInfo[]> {
    const out: SandboxInfo[] = [];
    const seen = new Set<string>();
    for (const i of await this.instances()) {
      const leaseId = i.config[KEY.lease] ?? '';
      if (!SANDBOX_ID_PATTERN.test(leaseId)) continue;
      seen.add(leaseId);
      if (i.status === 'Running') {
        this.known.add(leaseId);
        const ports = parsePorts(i.config[KEY.ports]);
        // A restarted node serves the ports again, on the host ports its answers already gave, and
        // another replica's leases are served here too (servePorts()).
        if (!this.starting.has(leaseId)) await this.servePorts(leaseId, ports);
        out.push({ leaseId, deadline: new Date(i.config[KEY.deadline] ?? 0), ports });
      } else if (!this.starting.has(leaseId) && !recent(i.created_at)) {
        await this.remove(leaseId);
      }
    }
    // Host directories of instances that are gone (ended at their deadline while no node ran).
    for (const entry of safeReaddir(this.options.runtimeDir)) {
      if (SANDBOX_ID_PATTERN.test(entry) && !seen.has(entry) && !this.starting.has(entry)) {
        // A directory being made by a start elsewhere is young; one removed meanwhile counts as young.
        const age = Date.now() - mtimeMs(join(this.options.runtimeDir, entry));
        if (age > STARTING_GRACE_MS)
          rmSync(join(this.options.runtimeDir, entry), { recursive: true, force: true });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    for (const leaseId of [...this.published.keys()]) this.unpublish(leaseId);
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = undefined;
    this.watchers.clear();
  }
}

/** A deadline as init counts it: epoch seconds, rounded up (crun's deadline file does the same). */
function deadlineSeconds(deadline: Date): number {
  return Math.max(0, Math.ceil(deadline.getTime() / 1000));
}

function limitsOf(i: Instance): SandboxLimits | undefined {
  try {
    return limitsSchema.parse(JSON.parse(i.config[KEY.limits] ?? ''));
  } catch {
    return undefined;
  }
}

/** The lease's environment (start's spec.env), as recorded on its instance. */
function leaseEnv(i: Instance): Record<string, string> {
  try {
    return z
      .record(z.string().regex(ENV_NAME_PATTERN), z.string())
      .parse(JSON.parse(i.config[KEY.env] ?? '{}'));
  } catch {
    return {};
  }
}

function parsePorts(text: string | undefined): Record<number, string> {
  try {
    const parsed = z
      .record(z.string().regex(/^\d{1,5}$/), z.string().max(64))
      .parse(JSON.parse(text ?? '{}'));
    return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [Number(k), v]));
  } catch {
    return {};
  }
}

function recent(createdAt: string | undefined): boolean {
  const t = createdAt ? Date.parse(createdAt) : Number.NaN;
  return Number.isFinite(t) && Date.now() - t < STARTING_GRACE_MS;
}

function validSize(size: TerminalSize): boolean {
  return (
    Number.isInteger(size.cols) &&
    Number.isInteger(size.rows) &&
    size.cols > 0 &&
    size.rows > 0 &&
    size.cols <= 1000 &&
    size.rows <= 1000
  );
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Date.now();
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Hard links (copies across file systems) of every file of `from` in `to`, directories recreated. */
function linkTree(from: string, to: string): void {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isDirectory()) {
      mkdirSync(dst, { mode: 0o755 });
      linkTree(src, dst);
    } else {
      try {
        linkSync(src, dst);
      } catch {
        copyFileSync(src, dst);
      }
    }
  }
}
