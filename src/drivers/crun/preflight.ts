import { execFileSync } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, delimiter, dirname, join } from 'node:path';
import { BUSYBOX_FREE } from './busybox-free.js';
import type { DriverLogger } from './crun-options.js';

/** Start-up failures: one message that says what to install or change. */
export class DriverPreflightError extends Error {
  override readonly name = 'DriverPreflightError';
}

export interface RuntimeInfo {
  name: 'crun' | 'runc';
  path: string;
  version: string;
}

function onPath(file: string, pathEnv: string): string | undefined {
  for (const dir of pathEnv.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, file);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const SEARCH_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** crun first (smaller, faster start), runc as the fallback. */
export function findRuntime(explicit?: string): RuntimeInfo {
  const pathEnv = `${process.env.PATH ?? ''}${delimiter}${SEARCH_PATH}`;
  const candidates = explicit ? [explicit] : [onPath('crun', pathEnv), onPath('runc', pathEnv)];
  for (const path of candidates) {
    if (!path) continue;
    try {
      const out = execFileSync(path, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const first = out.split('\n')[0] ?? '';
      const name = /\bcrun\b/.test(first) ? 'crun' : 'runc';
      return { name, path, version: first.trim() };
    } catch {
      // unusable binary: try the next
    }
  }
  throw new DriverPreflightError(
    explicit
      ? `the OCI runtime ${explicit} does not run; install crun (apt-get install crun) or fix the path`
      : 'no OCI runtime found: install crun (Debian: apt-get install crun) or runc',
  );
}

export interface CgroupLayout {
  mode: 'v1' | 'hybrid' | 'v2';
  /** memory.memsw is there, so swap can be capped with memory. */
  swapAccounting: boolean;
  /** A cpuset controller is there: a sandbox may be given CPUs of its own (cpuset.ts). */
  cpuset: boolean;
}

const CGROUP = '/sys/fs/cgroup';

function controllersOf(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Checks that memory, cpu and pids limits can be applied. On a hybrid host (v1 controllers plus a v2
 * tree) crun refuses to run while the v2 tree still holds a controller (hugetlb on some kernels);
 * mounting that controller as v1 moves it off v2, which is done here when we are root.
 */
export function checkCgroups(log: DriverLogger, isRoot: boolean): CgroupLayout {
  if (existsSync(join(CGROUP, 'cgroup.controllers'))) {
    const have = controllersOf(join(CGROUP, 'cgroup.controllers'));
    const missing = ['memory', 'pids', 'cpu'].filter((c) => !have.includes(c));
    if (missing.length > 0) {
      throw new DriverPreflightError(
        `cgroup v2 lacks the ${missing.join(', ')} controller(s); enable them (kernel or systemd configuration)`,
      );
    }
    return { mode: 'v2', swapAccounting: false, cpuset: have.includes('cpuset') };
  }
  const missing = ['memory', 'pids', 'cpu'].filter((c) => !existsSync(join(CGROUP, c, 'cgroup.procs')));
  if (missing.length > 0) {
    throw new DriverPreflightError(
      `no cgroup ${missing.join(', ')} hierarchy under ${CGROUP}; mount it, e.g. mkdir -p ${CGROUP}/memory && mount -t cgroup -o memory cgroup ${CGROUP}/memory`,
    );
  }
  const unified = join(CGROUP, 'unified');
  const held = controllersOf(join(unified, 'cgroup.controllers'));
  if (held.length > 0) {
    const fix = held.map((c) => `mkdir -p ${CGROUP}/${c} && mount -t cgroup -o ${c} cgroup ${CGROUP}/${c}`);
    if (!isRoot) {
      throw new DriverPreflightError(
        `the cgroup v2 tree at ${unified} holds ${held.join(', ')}, which crun refuses on a hybrid host; as root run: ${fix.join(' && ')}`,
      );
    }
    for (const c of held) {
      mkdirSync(join(CGROUP, c), { recursive: true });
      try {
        execFileSync('mount', ['-t', 'cgroup', '-o', c, 'cgroup', join(CGROUP, c)], { stdio: 'ignore' });
      } catch {
        // Another driver (a second node, a parallel test worker) may have moved it at the same
        // moment; whether it is off the v2 tree now is checked just below.
      }
      log.warn(
        `alacarte: moved cgroup controller ${c} off the v2 tree (${unified}) to ${CGROUP}/${c} so crun can run`,
      );
    }
    const still = controllersOf(join(unified, 'cgroup.controllers'));
    if (still.length > 0) {
      throw new DriverPreflightError(
        `could not move ${still.join(', ')} off ${unified}; run: ${fix.join(' && ')}`,
      );
    }
  }
  return {
    mode: existsSync(unified) ? 'hybrid' : 'v1',
    swapAccounting: existsSync(join(CGROUP, 'memory', 'memory.memsw.limit_in_bytes')),
    cpuset: existsSync(join(CGROUP, 'cpuset', 'cgroup.procs')),
  };
}

/** True for an ELF executable without a program interpreter, i.e. one that runs in any root filesystem. */
export function isStaticElf(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const header = Buffer.alloc(64);
    if (readSync(fd, header, 0, 64, 0) < 64 || header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2)
      return false;
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    if (phnum > 256) return false;
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      if (table.readUInt32LE(i * phentsize) === 3 /* PT_INTERP */) return false;
    }
    return true;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function requireStaticBusybox(path: string): void {
  if (!isStaticElf(path)) {
    throw new DriverPreflightError(
      `${path} is missing or not statically linked: install Debian's busybox-static (apt-get install busybox-static)`,
    );
  }
}

export function requireProgram(name: string, debianPackage: string): string {
  const found = onPath(name, `${process.env.PATH ?? ''}${delimiter}${SEARCH_PATH}`);
  if (!found) throw new DriverPreflightError(`${name} not found: install ${debianPackage}`);
  return found;
}

/** The applets the built-in image links to busybox. */
function applets(busybox: string): string[] {
  return execFileSync(busybox, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== 'busybox');
}

/**
 * Builds the built-in `busybox` image (a root filesystem of the static busybox and its applets) if
 * it is not there yet. Built aside and renamed into place, so a crash never leaves half an image.
 */
export function ensureBusyboxImage(
  imagesDir: string,
  busybox: string,
  idBase: number,
  log: DriverLogger,
): void {
  const target = join(imagesDir, 'busybox');
  if (existsSync(target)) return;
  mkdirSync(imagesDir, { recursive: true, mode: 0o755 });
  const tmp = join(imagesDir, `.busybox-${process.pid}-${Date.now()}`);
  rmSync(tmp, { recursive: true, force: true });
  for (const d of [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'etc',
    'proc',
    'sys',
    'dev',
    'run',
    'var',
    'root',
    'home',
  ]) {
    mkdirSync(join(tmp, d), { recursive: true, mode: 0o755 });
  }
  mkdirSync(join(tmp, 'tmp'));
  chmodSync(join(tmp, 'tmp'), 0o1777);
  chmodSync(join(tmp, 'root'), 0o700);
  copyFileSync(busybox, join(tmp, 'bin/busybox'));
  chmodSync(join(tmp, 'bin/busybox'), 0o755);
  for (const a of applets(busybox)) if (a !== 'free') symlinkSync('busybox', join(tmp, 'bin', a));
  writeFileSync(join(tmp, 'bin/free'), BUSYBOX_FREE, { mode: 0o755 });
  writeFileSync(
    join(tmp, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  writeFileSync(join(tmp, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(tmp, 'etc/hosts'), '127.0.0.1 localhost\n::1 localhost\n');
  shiftOwnership(tmp, idBase);
  try {
    renameSync(tmp, target);
  } catch (e) {
    // Another driver on the same images directory built it in the meantime.
    rmSync(tmp, { recursive: true, force: true });
    if (existsSync(target)) return;
    throw e;
  }
  writeFileSync(shiftMark(target), `${idBase}\n`);
  log.info(`alacarte: built the busybox image at ${target}`);
}

/** Marks an image whose owners were moved into the sandboxes' id range; kept beside it, not in it. */
export function shiftMark(imageDir: string): string {
  return join(dirname(imageDir), `.${basename(imageDir)}.alacarte-ids`);
}

/**
 * Root inside a sandbox is host uid idBase, so an image must be owned by the shifted ids for root
 * inside to own its files. Done once per image (an operator's image dropped in the images dir is
 * shifted on first use, and marked).
 */
export function ensureImageOwnership(imageDir: string, idBase: number, log: DriverLogger): void {
  const mark = shiftMark(imageDir);
  if (existsSync(mark)) {
    if (readFileSync(mark, 'utf8').trim() === String(idBase)) return;
    throw new DriverPreflightError(
      `${imageDir} was prepared for another id base; remove ${mark} and chown it back`,
    );
  }
  if (statSync(imageDir).uid >= idBase) {
    writeFileSync(mark, `${idBase}\n`);
    return;
  }
  shiftOwnership(imageDir, idBase);
  writeFileSync(mark, `${idBase}\n`);
  log.info(`alacarte: shifted file owners of image ${imageDir} by ${idBase} for user namespaces`);
}

/**
 * Moves every owner in a tree up by idBase (uid 0 becomes idBase...). lchown never follows a link;
 * an inode reached twice (hard links) is shifted once; chown clears set-id bits, which are put
 * back (file capabilities are cleared too, and stay so: under no_new_privs they grant nothing on
 * exec anyway). Ids at or past idCount have no owner inside the sandbox (they show as nobody): a tree with
 * such ids is refused rather than shifted outside the sandboxes' range onto another host id.
 * Iterative, so a deep tree cannot overflow the stack.
 */
export function shiftOwnership(root: string, idBase: number, idCount = 65_536): void {
  const seen = new Set<string>();
  const stack = [root];
  for (let path = stack.pop(); path !== undefined; path = stack.pop()) {
    const st = lstatSync(path, { bigint: true });
    const isDir = st.isDirectory();
    const key = `${st.dev}:${st.ino}`;
    if (!isDir && st.nlink > 1n) {
      if (seen.has(key)) continue;
      seen.add(key);
    }
    const uid = Number(st.uid);
    const gid = Number(st.gid);
    if (uid >= idCount || gid >= idCount) {
      throw new DriverPreflightError(
        `${path} is owned by ${uid}:${gid}, outside the sandboxes' ${idCount} ids; the image cannot be used`,
      );
    }
    lchownSync(path, uid + idBase, gid + idBase);
    // chmod does not follow a link's target here: links are skipped.
    if (!st.isSymbolicLink() && Number(st.mode) & 0o6000) chmodSync(path, Number(st.mode) & 0o7777);
    if (isDir) for (const e of readdirSync(path)) stack.push(join(path, e));
  }
}

/**
 * Mounting happens after the runtime has entered the sandbox's user namespace, as an unprivileged
 * host id, so every directory above the sandboxes and images must be searchable by others.
 */
export function requireTraversable(path: string): void {
  for (let p = path; ; p = dirname(p)) {
    if ((statSync(p).mode & 0o001) === 0) {
      throw new DriverPreflightError(
        `${p} must be searchable by other users (sandboxes mount through it as an unprivileged id): chmod o+x ${p}`,
      );
    }
    if (p === dirname(p)) return;
  }
}
