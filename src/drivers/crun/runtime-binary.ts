import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverLogger } from './crun-options.js';
import type { RuntimeInfo } from './preflight.js';

/** Where the read-only mounts of runtime binaries live, shared by every driver of the host. */
export const RUNTIME_MOUNT_DIR = '/run/alacarte-runtime';

/** How long a driver waits for another one that is mounting the same binary, in ms. */
const WAIT_MS = 3_000;

/** A lock older than this was left by a process that died while mounting: taken over. */
const STALE_LOCK_MS = 30_000;

/**
 * crun runs from a read-only bind mount of its binary, made once per host and binary, instead of
 * from its installed path. Against CVE-2019-5736 (a container overwriting the runtime's binary
 * through /proc/self/exe) crun otherwise protects itself on every call, create, delete and exec
 * alike: it bind-mounts itself read-only in /tmp, remounts, unmounts, and re-executes itself from
 * that mount, loading its shared libraries a second time. On this 2-core host that is about a
 * third of each call's CPU (bench/RESULTS.md, "One sandbox's life"). A binary that is already on a
 * read-only mount is what that protection makes, so crun 1.8 (Debian 12) runs it as it is; the
 * binary cannot be written through it from a sandbox any more than through crun's own mount, and
 * the mount is in the host's namespace, out of every sandbox's reach. A crun that wants more before
 * it trusts the mount (some versions also look for an environment variable) protects itself as
 * before: slower, never less safe.
 *
 * The mount is named after the binary's device, inode, size and change time, so an upgraded crun
 * gets a new one; mounts are never removed (like lxcfs, sandboxes may outlive the node). Drivers
 * starting at once: one mounts (a directory as the lock), the others wait for it. Any failure
 * (not root, no mount(8), a mount that is not read-only) leaves the runtime as found, with a warning.
 * runc is left alone (it has its own ways: runc-dmz, memfd-bind).
 */
export function readOnlyRuntime(
  runtime: RuntimeInfo,
  log: DriverLogger,
  dir = RUNTIME_MOUNT_DIR,
): RuntimeInfo {
  if (runtime.name !== 'crun') return runtime;
  try {
    const st = statSync(runtime.path);
    const target = join(dir, `crun-${st.dev}-${st.ino}-${st.size}-${Math.trunc(st.ctimeMs)}`);
    if (!readOnlyBindOf(target, runtime.path)) mountOnce(target, runtime.path, dir);
    if (!readOnlyBindOf(target, runtime.path)) throw new Error(`${target} is not a read-only mount of it`);
    return { ...runtime, path: target };
  } catch (e) {
    log.warn(`alacarte: running ${runtime.path} from where it is installed: ${String(e)}`);
    return runtime;
  }
}

/** `target` is `source` (same device and inode) and its last mount is read-only. */
export function readOnlyBindOf(
  target: string,
  source: string,
  mountinfo = () => readFileSync('/proc/self/mountinfo', 'utf8'),
): boolean {
  try {
    const a = statSync(target);
    const b = statSync(source);
    if (a.dev !== b.dev || a.ino !== b.ino) return false;
  } catch {
    return false;
  }
  let options: string | undefined;
  for (const line of mountinfo().split('\n')) {
    // Fields: id, parent, major:minor, root, mount point, mount options, ... (proc(5)).
    const fields = line.split(' ');
    if (fields[4] === target) options = fields[5];
  }
  return options?.split(',').includes('ro') ?? false;
}

function mountOnce(target: string, source: string, dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const lock = `${target}.lock`;
  for (const until = Date.now() + WAIT_MS; ; ) {
    try {
      mkdirSync(lock);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (readOnlyBindOf(target, source)) return;
      if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmdirSync(lock);
      else if (Date.now() > until) throw new Error('another driver holds the lock of the mount');
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      continue;
    }
    try {
      // Under the lock: a mount of another driver may have completed meanwhile.
      if (readOnlyBindOf(target, source)) return;
      writeFileSync(target, '', { flag: 'a', mode: 0o755 });
      const bound = statSync(target);
      const src = statSync(source);
      if (bound.dev !== src.dev || bound.ino !== src.ino)
        execFileSync('mount', ['--bind', source, target], { stdio: 'ignore' });
      execFileSync('mount', ['-o', 'remount,bind,ro', target], { stdio: 'ignore' });
      return;
    } finally {
      rmdirSync(lock);
    }
  }
}
