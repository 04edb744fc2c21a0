import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImageError, type ImageListing, type ImageStore } from './image-store.js';
import { type ProgressSink, requireTool, runTool } from './image-tools.js';

/** What the `debian` image holds beyond Debian's essential packages and apt. */
export const DEBIAN_PACKAGES = [
  'python3',
  'python3-pip',
  'python3-venv',
  'curl',
  'git',
  'ca-certificates',
  // free, ps, top, uptime: what a renter types first to see their server.
  'procps',
];

/** Bump with every change to finishTree(). */
const FINISH_VERSION = 1;

/**
 * Names what the build makes: changes whenever the packages or the way the tree is finished do
 * so a cache of built images (the tests') can tell a stale one from a current one.
 */
export function debianRecipe(): string {
  return createHash('sha256')
    .update(JSON.stringify({ finishTree: FINISH_VERSION, DEBIAN_PACKAGES, DPKG_EXCLUDES }))
    .digest('hex')
    .slice(0, 12);
}

export interface DebianBuildOptions {
  /** Root inside the sandboxes is this host id (the driver's idBase). */
  idBase: number;
  progress: ProgressSink;
  /** Debian mirror; default deb.debian.org. */
  mirror?: string;
  securityMirror?: string;
  /** Image name; default `debian`. */
  name?: string;
}

// Documentation, manual pages and translations are a third of the files and no use in a sandbox
// (as in Docker's debian images); fewer files also mean a quicker owner shift.
const DPKG_EXCLUDES = [
  'path-exclude=/usr/share/man/*',
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/locale/*',
  'path-exclude=/usr/share/info/*',
];

/**
 * Builds the `debian` image (Debian 12 bookworm with DEBIAN_PACKAGES) from Debian's own packages
 * with mmdebstrap, printing its progress, unless it is there already. Concurrent callers on one
 * images directory (two test workers, two set-ups) build it once: the others wait for it.
 * Takes about half a minute with a nearby mirror. Throws ImageError with mmdebstrap's last words.
 */
export async function ensureDebianImage(
  store: ImageStore,
  options: DebianBuildOptions,
): Promise<ImageListing | undefined> {
  const name = options.name ?? 'debian';
  const lock = join(store.imagesDir, `.${name}.build-lock`);
  mkdirSync(store.imagesDir, { recursive: true, mode: 0o755 });
  for (let waited = false; ; waited = true) {
    if (store.has(name)) return undefined;
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), `${process.pid}\n`);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    // A build killed half-way leaves its lock: stale once its process is gone (or, without a pid
    // written yet, after longer than any build takes).
    if (lockIsStale(lock)) {
      rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (!waited) options.progress(`another process is building the ${name} image; waiting for it`);
    await sleep(500);
  }
  try {
    if (store.has(name)) return undefined;
    return await build(store, name, options);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function lockIsStale(lock: string): boolean {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(join(lock, 'pid'), 'utf8'), 10);
  } catch {
    try {
      return Date.now() - statSync(lock).mtimeMs > 20 * 60_000;
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

async function build(store: ImageStore, name: string, options: DebianBuildOptions): Promise<ImageListing> {
  const mmdebstrap = requireTool('mmdebstrap', 'mmdebstrap');
  const mirror = options.mirror ?? 'http://deb.debian.org/debian';
  const security = options.securityMirror ?? 'http://deb.debian.org/debian-security';
  // Its real path: reached through a data directory's link (a clone in a private directory), apt's
  // _apt user could not traverse the way and apt would download unsandboxed, as root.
  const staging = realpathSync(store.stagingDir());
  const rootfs = join(staging, 'rootfs');
  try {
    options.progress(`building the ${name} image with mmdebstrap (Debian 12: ${DEBIAN_PACKAGES.join(', ')})`);
    const started = Date.now();
    const r = await runTool(
      mmdebstrap,
      [
        '--mode=root',
        '--variant=apt',
        `--include=${DEBIAN_PACKAGES.join(',')}`,
        ...DPKG_EXCLUDES.map((o) => `--dpkgopt=${o}`),
        'bookworm',
        rootfs,
        `deb ${mirror} bookworm main`,
        `deb ${mirror} bookworm-updates main`,
        `deb ${security} bookworm-security main`,
      ],
      (line) => options.progress(`  ${line}`),
    );
    if (r.code !== 0)
      throw new ImageError(`building the ${name} image failed (mmdebstrap exit ${r.code}):\n${r.tail}`);
    finishTree(rootfs);
    options.progress(
      `built in ${Math.round((Date.now() - started) / 1000)} s; shifting owners for user namespaces`,
    );
    return store.install(
      name,
      rootfs,
      {
        description: 'Debian 12 with python3, pip, venv, curl, git, ca-certificates and apt',
        source: `mmdebstrap bookworm from ${mirror}`,
        env: { LANG: 'C.UTF-8' },
        working_dir: '/root',
        entrypoint: [],
        cmd: [],
        shell: '/bin/bash',
      },
      options.idBase,
    );
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * What a sandbox's root needs beyond the packages: the build copies the host's resolver and name,
 * which are not the sandbox's business. apt needs nothing: its download sandbox (`_apt`, uid 42)
 * is one of the ids mapped into every sandbox's user namespace, so it drops to it as on any host.
 */
function finishTree(rootfs: string): void {
  writeFileSync(join(rootfs, 'etc/hostname'), 'sandbox\n');
  writeFileSync(join(rootfs, 'etc/hosts'), '127.0.0.1 localhost\n::1 localhost\n127.0.1.1 sandbox\n');
  writeFileSync(join(rootfs, 'etc/resolv.conf'), '');
}
