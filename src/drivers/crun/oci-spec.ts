import type { SandboxLimits } from '../compute-driver.js';
import { lxcfsMounts } from './lxcfs.js';
import { type SeccompProfile, seccompProfile } from './seccomp.js';

/** Where things sit inside every sandbox. */
export const IN_SANDBOX = {
  runDir: '/run/alacarte',
  binDir: '/run/alacarte/bin',
  busybox: '/run/alacarte/bin/busybox',
  init: '/run/alacarte/bin/init.sh',
  /**
   * init's own copy of busybox, mode 0711 and owned by root inside: executable but not readable by
   * the uid init's deadline loop runs as, which makes that process non-dumpable (init-script.ts).
   * Everything else runs the readable busybox: a process of an unreadable program is non-dumpable,
   * and its tenant could no longer read its own processes' /proc files.
   */
  initBusybox: '/run/alacarte/bin/busybox-init',
  /** The native init (native/sandbox-init.c), PID 1 where the host has its build (host-setup.ts). */
  nativeInit: '/run/alacarte/bin/sandbox-init',
} as const;

/**
 * The uid and gid init runs as once started: not root inside (the tenant's uid), none of the
 * usual ids of an image, and without capabilities, so that it cannot read IN_SANDBOX.initBusybox
 * (mode 0711, owned by root inside) and the kernel makes it non-dumpable (init-script.ts; the
 * native init makes itself non-dumpable, native/sandbox-init.c).
 */
export const INIT_UID = 65533;

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The per-sandbox facts the OCI config is made of; everything here is already validated. */
export interface OciSpecInput {
  hostname: string;
  /** Host path of the merged (overlay) root filesystem. */
  rootfs: string;
  /** Host directory shown read-only at /run/alacarte (lease.json, deadline). */
  runDir: string;
  /** Host directory with the static busybox and init.sh, shown read-only at /run/alacarte/bin. */
  libDir: string;
  limits: SandboxLimits;
  /** The sandbox's cpuset as a kernel CPU list (e.g. "1"), or none: the parent's CPUs. */
  cpus?: string;
  /** Root inside is this host uid/gid, and the next 65535 ids follow. */
  idBase: number;
  idCount: number;
  /** Absolute cgroup path, outside the node's own cgroup. */
  cgroupsPath: string;
  /** The host has memory+swap accounting, so swap can be capped too. */
  swapAccounting: boolean;
  /** Mount point of a running lxcfs whose proc files are bound over the sandbox's (lxcfs.ts), if any. */
  lxcfsDir?: string;
  arch?: string;
  /** PID 1 (InitKind). Default shell. */
  init?: InitKind;
}

/**
 * A sandbox's PID 1: the native init (native/sandbox-init.c, NATIVE_INIT_FILE in the library
 * directory) or the busybox shell init (init-script.ts), where the native one is not built.
 */
export type InitKind = 'native' | 'shell';

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<'bounding' | 'effective' | 'permitted' | 'inheritable' | 'ambient', string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
    oomScoreAdj: number;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    uidMappings: { containerID: number; hostID: number; size: number }[];
    gidMappings: { containerID: number; hostID: number; size: number }[];
    namespaces: { type: string }[];
    cgroupsPath: string;
    resources: {
      memory: { limit: number; swap?: number };
      cpu: { quota: number; period: number; cpus?: string };
      pids: { limit: number };
      devices: { allow: boolean; type?: string; major?: number; minor?: number; access: string }[];
    };
    seccomp: SeccompProfile;
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

/**
 * What root inside may do: enough to own its files, switch users and bind low ports, nothing that
 * reaches the kernel (no SYS_ADMIN, NET_ADMIN, NET_RAW, SYS_PTRACE, MKNOD, SYS_CHROOT, AUDIT_*).
 */
export const CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_NET_BIND_SERVICE',
];

const MIB = 1024 * 1024;
/** The CFS period of a sandbox of 0.1 vCPU and more: the kernel's default. */
const CPU_PERIOD_US = 100_000;
/** The longest CFS period the kernel takes. */
const MAX_CPU_PERIOD_US = 1_000_000;
/**
 * The CPU time a sandbox may run at once before its quota stops it: its periods are made long
 * enough for this. A start (init, the starter, the exec agent's fork and exec of a first command)
 * takes 1.5 to 2.5 ms of CPU here; with 0.01 vCPU per 100 ms (1 ms) that overran the quota and
 * the first command waited for the next period, 40 to 100 ms (bench/PROFILES.md, session 11).
 */
const MIN_QUOTA_US = 10_000;
/** The kernel refuses quotas under 1 ms. */
const MIN_KERNEL_QUOTA_US = 1000;

/**
 * A sandbox's CFS bandwidth for `vcpu` CPUs: `quota` µs of CPU per `period` µs, on average `vcpu`
 * CPUs. The period is the kernel's default 100 ms, made longer (up to 1 s) for a sandbox under
 * 0.1 vCPU so that its quota is at least 10 ms: a 0.01-vCPU sandbox gets 10 ms per second rather
 * than 1 ms per 100 ms, the same average, without a stall on every short burst of work. LXD's
 * `limits.cpu.allowance` is given per 1 s alike (lxd-driver.ts).
 */
export function cpuBandwidth(vcpu: number): { quota: number; period: number } {
  const period = Math.min(MAX_CPU_PERIOD_US, Math.max(CPU_PERIOD_US, Math.round(MIN_QUOTA_US / vcpu)));
  return { quota: Math.max(MIN_KERNEL_QUOTA_US, Math.round(vcpu * period)), period };
}

export function ociSpec(input: OciSpecInput): OciSpec {
  const memory = input.limits.memoryMib * MIB;
  const caps = [...CAPABILITIES];
  // init's environment is fixed: the lease's own reaches only its command (see init-script.ts).
  const env = [DEFAULT_PATH, 'HOME=/root'];
  // /dev/shm is memory too; it is charged to the sandbox, capping it only keeps one tmpfs from eating all.
  const shmKib = Math.max(1024, Math.floor((input.limits.memoryMib * 1024) / 2));
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args:
        input.init === 'native'
          ? [IN_SANDBOX.nativeInit, IN_SANDBOX.runDir, String(INIT_UID), IN_SANDBOX.busybox]
          : [IN_SANDBOX.busybox, 'sh', IN_SANDBOX.init],
      env,
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 1024 }],
      noNewPrivileges: true,
      // When the host runs short, the kernel should pick a tenant, not the node.
      oomScoreAdj: 500,
    },
    root: { path: input.rootfs, readonly: false },
    hostname: input.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=64k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmKib}k`],
      },
      {
        destination: '/dev/mqueue',
        type: 'mqueue',
        source: 'mqueue',
        options: ['nosuid', 'noexec', 'nodev'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      {
        destination: IN_SANDBOX.runDir,
        type: 'bind',
        source: input.runDir,
        options: ['rbind', 'ro', 'nosuid', 'nodev'],
      },
      {
        destination: IN_SANDBOX.binDir,
        type: 'bind',
        source: input.libDir,
        options: ['rbind', 'ro', 'nosuid', 'nodev'],
      },
      // After /proc and /sys: the lease's own memory, CPUs and uptime (lxcfs.ts).
      ...(input.lxcfsDir ? lxcfsMounts(input.lxcfsDir) : []),
    ],
    linux: {
      uidMappings: [{ containerID: 0, hostID: input.idBase, size: input.idCount }],
      gidMappings: [{ containerID: 0, hostID: input.idBase, size: input.idCount }],
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'user', 'cgroup'].map((type) => ({ type })),
      cgroupsPath: input.cgroupsPath,
      resources: {
        memory: input.swapAccounting ? { limit: memory, swap: memory } : { limit: memory },
        cpu: {
          ...cpuBandwidth(input.limits.vcpu),
          ...(input.cpus === undefined ? {} : { cpus: input.cpus }),
        },
        pids: { limit: input.limits.pids },
        devices: [
          { allow: false, access: 'rwm' },
          ...[
            [1, 3],
            [1, 5],
            [1, 7],
            [1, 8],
            [1, 9],
            [5, 0],
            [5, 2],
          ].map(([major, minor]) => ({ allow: true, type: 'c', major, minor, access: 'rwm' })),
          { allow: true, type: 'c', major: 136, access: 'rwm' },
        ],
      },
      seccomp: seccompProfile(input.arch),
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/proc/scsi',
        '/sys/firmware',
        '/sys/devices/virtual/powercap',
        // Not /proc/1/mem: init holds the deadline, and is non-dumpable under another uid
        // (init-script.ts), so the kernel refuses its memory, environment and fds to root inside
        // (no CAP_SYS_PTRACE). A mask would only answer with /dev/null, where an open then succeeds.
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
