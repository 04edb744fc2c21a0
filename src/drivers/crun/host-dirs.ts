import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** Where the node keeps what sandboxes mount when the data directory is not reachable for them. */
export const DEFAULT_MOUNT_ROOT = '/var/lib/alacarte';

/** The directories of a data directory that sandboxes mount from (images, and the sandboxes' own). */
const MOUNTED = ['images', 'sandboxes'] as const;

/** True when every directory from `path` up to `/` is searchable by other users. */
export function traversable(path: string): boolean {
  for (let p = resolve(path); ; p = dirname(p)) {
    if ((statSync(p).mode & 0o001) === 0) return false;
    if (p === dirname(p)) return true;
  }
}

/**
 * Makes `<dataDir>/images` and `<dataDir>/sandboxes` reachable for sandboxes wherever the data
 * directory lives. Sandboxes mount from these directories as an unprivileged host id (inside their
 * user namespace), so every directory above them must be searchable by others; a clone in a
 * private home (root's is 0700) or under `mktemp -d` is not. Rather than ask the user to open their
 * home, the two directories then live under `<root>/<hash of the data dir>/` (root 0711, /var/lib
 * persists like the data dir), and the data directory holds symbolic links to them, so
 * `<data>/images` stays where operators drop images. Whatever an earlier run left in the data
 * directory itself is moved over. Returns the directory used, or undefined when the data
 * directory was reachable already. Needs root (as the driver does).
 */
export function placeMountedDirs(dataDir: string, root = DEFAULT_MOUNT_ROOT): string | undefined {
  const data = realpathSync(dataDir);
  const linked = MOUNTED.some((name) => isSymlink(join(data, name)));
  if (!linked && traversable(data)) return undefined;
  const base = join(root, createHash('sha256').update(data).digest('hex').slice(0, 16));
  mkdirSync(base, { recursive: true, mode: 0o711 });
  for (let p = base; p !== dirname(p) && p.startsWith(root); p = dirname(p)) chmodSync(p, 0o711);
  // Says whose it is, for an operator who finds it (and to clean up after deleting a clone).
  writeFileSync(join(base, 'data-dir'), `${data}\n`, { mode: 0o600 });
  for (const name of MOUNTED) {
    const target = join(base, name);
    const link = join(data, name);
    mkdirSync(target, { recursive: true, mode: name === 'images' ? 0o755 : 0o711 });
    if (isSymlink(link)) {
      if (readlinkSync(link) === target) continue;
      rmSync(link);
    } else if (exists(link)) {
      moveContents(link, target);
      rmSync(link, { recursive: true, force: true });
    }
    symlinkSync(target, link);
  }
  return base;
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Whether anything is at `path`, a dangling symbolic link too (lstat, not stat). */
export function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Moves every entry of `from` into `to`: a rename on one file system, else a copy keeping owners and modes. */
function moveContents(from: string, to: string): void {
  for (const entry of readdirSync(from)) {
    const source = join(from, entry);
    const dest = join(to, entry);
    if (exists(dest)) continue;
    try {
      renameSync(source, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      execFileSync('cp', ['-a', '--', source, dest], { stdio: 'ignore' });
    }
  }
}
