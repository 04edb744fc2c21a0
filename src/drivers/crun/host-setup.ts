import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultOvercommit, type HostResources, type OvercommitSettings } from '../capacity.js';
import { type CrunDriverOptions, type DriverLogger, silentLogger } from './crun-options.js';
import { DEFAULT_EGRESS_UID_BASE, EGRESS_UID_COUNT, EgressNetwork } from './egress.js';
import { AGENT_FILE, agentScript, NATIVE_AGENT_FILE } from './exec-agent.js';
import { initScript, NATIVE_INIT_FILE } from './init-script.js';
import { DriverLxcfs } from './lxcfs.js';
import type { InitKind } from './oci-spec.js';
import {
  type CgroupLayout,
  checkCgroups,
  DriverPreflightError,
  ensureBusyboxImage,
  findRuntime,
  type RuntimeInfo,
  requireProgram,
  requireStaticBusybox,
  requireTraversable,
} from './preflight.js';
import { useSpawnerShell } from './run-process.js';
import { EXEC_FIFOS, openRunState, sweepExecFifos } from './run-state.js';
import { readOnlyRuntime } from './runtime-binary.js';
import { installSftpServer } from './sftp-server.js';

/** Where a driver's files are on the host (real paths: mounts use them). */
export interface DriverPaths {
  runtimeDir: string;
  /** The sandboxes' run directories and the exec FIFOs, on a tmpfs (run-state.ts). */
  runState: string;
  imagesDir: string;
  stateDir: string;
  libDir: string;
  busybox: string;
  script: string;
}

/** What setUpHost() found and made ready: everything a CrunDriver is built from. */
export interface HostSetup {
  runtime: RuntimeInfo;
  cgroups: CgroupLayout;
  paths: DriverPaths;
  instance: string;
  idBase: number;
  idCount: number;
  cgroupParent: string;
  host: HostResources;
  overcommit: OvercommitSettings;
  log: DriverLogger;
  warmLayers: number;
  warmLayersMax: number;
  warmConcurrency: number;
  /** The lxcfs whose proc files sandboxes bind (lxcfs.ts). */
  lxcfs: DriverLxcfs;
  /** How sftp() runs OpenSSH's sftp-server inside (sftp-server.ts), or why it cannot. */
  sftpServer: { command: string[] } | { missing: string };
  egress: EgressNetwork;
  /** Every sandbox's PID 1 from now on: the native init, or the busybox shell init where it is not built. */
  init: InitKind;
}

/**
 * CrunDriver.create()'s first part: checks the host (root, runtime, cgroups, busybox, script,
 * directories others can traverse) and fixes what it may: makes the directories and the run state,
 * installs what every sandbox runs from the driver's lib directory (busybox, init's busybox, init
 * and agent scripts, sftp-server), builds the busybox image, opens lxcfs and the egress network.
 * Throws DriverPreflightError with one message saying what to install or change.
 */
export async function setUpHost(options: CrunDriverOptions): Promise<HostSetup> {
  const log = options.logger ?? silentLogger;
  const isRoot = process.getuid?.() === 0;
  if (!isRoot)
    throw new DriverPreflightError(
      'the crun driver needs root (user namespaces with a host id range, cgroups, mounts)',
    );
  // From a read-only mount of its binary: crun then skips re-executing itself on every call.
  const runtime = readOnlyRuntime(findRuntime(options.runtimePath), log);
  const cgroups = checkCgroups(log, isRoot);
  const busybox = options.busyboxPath ?? '/bin/busybox';
  requireStaticBusybox(busybox);
  if (options.spawnerShell !== false) useSpawnerShell(busybox);
  const script = requireProgram('script', 'bsdutils (util-linux)');
  const givenRuntimeDir = resolve(options.runtimeDir);
  mkdirSync(givenRuntimeDir, { recursive: true, mode: 0o711 });
  mkdirSync(options.imagesDir, { recursive: true, mode: 0o755 });
  // Mounts use the real paths: a data directory in a private place links these two to where
  // sandboxes can reach them (host-dirs.ts).
  const runtimeDir = realpathSync(givenRuntimeDir);
  const imagesDir = realpathSync(options.imagesDir);
  for (const p of [runtimeDir, imagesDir]) {
    // overlayfs options are comma and colon separated.
    if (/[,:\s'"\\]/.test(p))
      throw new DriverPreflightError(`${p}: paths with , : quotes or spaces are not supported`);
  }
  const instance =
    options.instance ?? `a${createHash('sha256').update(givenRuntimeDir).digest('hex').slice(0, 8)}`;
  if (!/^[a-z0-9]{1,16}$/.test(instance))
    throw new DriverPreflightError('instance must be 1-16 lower-case letters or digits');
  const stateDir = options.stateDir ?? `/run/alacarte-${instance}`;
  const idBase = options.idBase ?? 1_000_000;
  const idCount = options.idCount ?? 65_536;
  mkdirSync(runtimeDir, { recursive: true, mode: 0o711 });
  mkdirSync(imagesDir, { recursive: true, mode: 0o755 });
  chmodSync(runtimeDir, 0o711);
  requireTraversable(runtimeDir);
  requireTraversable(imagesDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  // The directory nodes before the run state kept the exec FIFOs in: emptied of crashed processes'.
  sweepExecFifos(join(runtimeDir, EXEC_FIFOS));
  try {
    rmdirSync(join(runtimeDir, EXEC_FIFOS));
  } catch {
    // absent, or another process's FIFOs are still there
  }
  // Beside the runtime's state (run-state.ts).
  const runState = `${resolve(stateDir)}-run`;
  await openRunState(runState, busybox, log);
  requireTraversable(runState);
  const libDir = join(runtimeDir, '.lib');
  mkdirSync(libDir, { recursive: true, mode: 0o755 });
  // Every sandbox's init runs the host's static busybox: copied, so an upgrade never swaps it under a sandbox.
  writeIfChanged(join(libDir, 'busybox'), readFileSync(busybox), 0o755);
  installInitBusybox(join(libDir, 'busybox-init'), readFileSync(busybox), idBase);
  writeIfChanged(join(libDir, 'init.sh'), Buffer.from(initScript()), 0o644);
  writeIfChanged(join(libDir, AGENT_FILE), Buffer.from(agentScript()), 0o644);
  // The shell init looks for the native agent when it starts: a copy removed means the shell agent.
  const nativeAgent = installNative(
    libDir,
    NATIVE_AGENT_FILE,
    options.nativeAgent ?? NATIVE_AGENT_BUILD,
    'native exec agent',
    true,
  );
  // The native init has the native agent linked in: not where the shell agent was asked for. The
  // choice is written into each sandbox's config, so a copy another driver uses is left in place.
  const initProgram = options.nativeAgent === false ? false : (options.nativeInit ?? NATIVE_INIT_BUILD);
  const nativeInit = installNative(libDir, NATIVE_INIT_FILE, initProgram, 'native init', false);
  const init = initProgram !== false && nativeInit === undefined ? 'native' : 'shell';
  if (nativeInit) log.warn(`alacarte: ${nativeInit}; sandboxes run the busybox shell init, slower`);
  if (nativeAgent && init === 'shell')
    log.warn(`alacarte: ${nativeAgent}; sandboxes run the busybox shell agent, slower`);
  ensureBusyboxImage(imagesDir, busybox, idBase, log);
  const lxcfs = await DriverLxcfs.open(
    typeof options.lxcfsDir === 'string' ? resolve(options.lxcfsDir) : options.lxcfsDir,
    log,
  );
  const sftpServer = installSftpServer(libDir);
  if ('missing' in sftpServer) log.warn(`alacarte: no SFTP in sandboxes: ${sftpServer.missing}`);
  const host = { cpus: availableParallelism(), memoryMib: Math.floor(totalmem() / 2 ** 20) };
  const egress = new EgressNetwork({ instance, logger: log, ...options.egress });
  const uidBase = options.egress?.uidBase ?? DEFAULT_EGRESS_UID_BASE;
  if (uidBase < idBase + idCount && idBase < uidBase + EGRESS_UID_COUNT)
    throw new DriverPreflightError("egress.uidBase must not overlap the sandboxes' ids (idBase, idCount)");
  if (egress.unavailable) log.warn(`alacarte: ${egress.unavailable}; egress offers will fail to start`);
  return {
    runtime,
    cgroups,
    paths: { runtimeDir, runState, imagesDir, stateDir, libDir, busybox, script },
    instance,
    idBase,
    idCount,
    cgroupParent: options.cgroupParent ?? '/alacarte',
    host,
    overcommit: { ...defaultOvercommit(host), ...options.overcommit },
    log,
    warmLayers: options.warmLayers ?? 2,
    warmLayersMax: options.warmLayersMax ?? 128,
    warmConcurrency: options.warmConcurrency ?? 1,
    lxcfs,
    sftpServer,
    egress,
    init,
  };
}

/**
 * init's own busybox (IN_SANDBOX.initBusybox): `content`, mode 0711, owned by `idBase` (root inside,
 * so that the owner is mapped in every sandbox's user namespace and `crun exec` may still join
 * init; see init-script.ts). Replaced (written beside, then renamed) when any of those differ; a
 * running sandbox keeps the file it started with.
 */
function installInitBusybox(path: string, content: Buffer, idBase: number): void {
  try {
    const st = statSync(path);
    if (
      (st.mode & 0o7777) === 0o711 &&
      st.uid === idBase &&
      st.gid === idBase &&
      readFileSync(path).equals(content)
    )
      return;
  } catch {
    // missing
  }
  const tmp = `${path}.tmp`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, content, { mode: 0o700 });
  chownSync(tmp, idBase, idBase);
  chmodSync(tmp, 0o711);
  renameSync(tmp, path);
}

/** The native exec agent as `scripts/setup.sh` builds it (native/exec-agent.c), from src/ or dist/. */
export const NATIVE_AGENT_BUILD = fileURLToPath(new URL('../../../native/build/exec-agent', import.meta.url));
/** The native init as `scripts/setup.sh` builds it (native/sandbox-init.c), from src/ or dist/. */
export const NATIVE_INIT_BUILD = fileURLToPath(
  new URL('../../../native/build/sandbox-init', import.meta.url),
);

/**
 * Puts the native `program` into the library directory as `name`, where every sandbox made from
 * now on finds it. When there is none: `remove` removes an older copy (what a sandbox's init looks
 * for when it starts, as the shell init does the agent), else it is left for the processes that
 * chose it at their start. Answers why it is missing (`what` names it), or undefined.
 */
function installNative(
  libDir: string,
  name: string,
  program: string | false,
  what: string,
  remove: boolean,
): string | undefined {
  let content: Buffer | undefined;
  try {
    content = program === false ? undefined : readFileSync(program);
  } catch {
    // not built
  }
  if (content === undefined) {
    if (remove) rmSync(join(libDir, name), { force: true });
    return program === false ? undefined : `no ${what} at ${program} (npm run setup builds it, with gcc)`;
  }
  writeIfChanged(join(libDir, name), content, 0o755);
  return undefined;
}

/** Writes `content` to `path` (beside, then renamed) unless it holds that already. */
function writeIfChanged(path: string, content: Buffer, mode: number): void {
  try {
    if (readFileSync(path).equals(content)) return;
  } catch {
    // missing
  }
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, path);
}
