import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  mkdirSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
} from 'node:fs';
import { basename, dirname, join, posix } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IS_A_DIRECTORY } from '../../files/file-transfer.js';
import type { Alacarte } from '../../sdk/client.js';
import { AlacarteApiError } from '../../sdk/errors.js';
import { type Io, UsageError } from './ui.js';

/** What cp prints: a line (none when the file went to stdout) or, with --json, the object. */
export interface Copied {
  human?: string;
  json: Record<string, unknown>;
}

/** `lse_…:/path` (a lease id, a colon, a path in its sandbox). */
const REMOTE = /^([A-Za-z0-9_-]{1,64}):(.*)$/s;

/** A side of `alacarte cp`: a local path (or `-`) or a path in a lease's sandbox. */
type Side = { kind: 'local'; path: string } | { kind: 'remote'; lease: string; path: string };

/**
 * Parses a `cp` argument. A relative remote path is under /root, as scp's is under the home
 * directory, and so is one starting with `~/` (or `~` alone), as scp's remote shell would expand
 * it; `./x` or `/x` is always local, so is anything without a colon.
 */
export function parseSide(arg: string): Side {
  const m = REMOTE.exec(arg);
  if (!m || arg.startsWith('.') || arg.startsWith('/')) return { kind: 'local', path: arg };
  const [, lease = '', given = ''] = m;
  const path = given === '~' ? '' : given.startsWith('~/') ? given.slice(2) : given;
  return { kind: 'remote', lease, path: path.startsWith('/') ? path : `/root/${path}` };
}

/**
 * `alacarte cp SRC DST`: one side local, the other `ID:/path`. Files stream both ways; a directory
 * goes as a tar archive (made and unpacked by this machine's `tar`, and by the sandbox's). A
 * destination ending in `/` (or, locally, an existing directory) receives the source under its
 * own name, as with cp and scp. Returns a line to print and the JSON to print instead.
 */
export async function copy(sdk: Alacarte, io: Io, from: string, to: string): Promise<Copied> {
  const src = parseSide(from);
  const dst = parseSide(to);
  if (src.kind === 'local' && dst.kind === 'remote') return upload(sdk, src.path, dst);
  if (src.kind === 'remote' && dst.kind === 'local') return download(sdk, io, src, dst.path);
  throw new UsageError('one side must be local and the other ID:/path in a lease', 'cp');
}

async function upload(sdk: Alacarte, local: string, dst: { lease: string; path: string }): Promise<Copied> {
  if (local === '-') {
    if (dst.path.endsWith('/')) throw new UsageError('name the file to write from standard input', 'cp');
    const r = await sdk.files.write(dst.lease, dst.path, process.stdin as Readable);
    return done(r.size, `${dst.lease}:${r.path}`, r);
  }
  const stat = localStat(local);
  const name = basename(local.replace(/\/+$/, '')) || 'root';
  const target = dst.path.endsWith('/') ? posix.join(dst.path, name) : dst.path;
  if (stat.isDirectory()) {
    const tar = spawn('tar', ['-c', '-C', local, '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const failed = localTool(tar, 'tar -c');
    const r = await sdk.files.write(dst.lease, target, tar.stdout, { tar: true });
    await failed;
    return done(r.size, `${dst.lease}:${r.path}/`, r, 'directory');
  }
  if (!stat.isFile()) throw new UsageError(`${local} is not a file or a directory`, 'cp');
  const mode = (stat.mode & 0o7777).toString(8).padStart(4, '0');
  const write = (path: string) =>
    sdk.files.write(dst.lease, path, createReadStream(local), { mode, size: stat.size });
  let r: Awaited<ReturnType<typeof write>>;
  try {
    r = await write(target);
  } catch (err) {
    // As scp does: a destination that is a directory in the sandbox receives the file under its
    // own name (the node refused it before writing anything; the file is sent again).
    if (target !== dst.path || !isDirectoryRefusal(err)) throw err;
    r = await write(posix.join(dst.path, name));
  }
  return done(r.size, `${dst.lease}:${r.path}`, r);
}

async function download(
  sdk: Alacarte,
  io: Io,
  src: { lease: string; path: string },
  local: string,
): Promise<Copied> {
  const got = await sdk.files.read(src.lease, src.path);
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      callback(null, chunk);
    },
  });
  if (local === '-') {
    if (got.kind === 'directory') {
      got.stream.destroy();
      throw new UsageError(`${src.path} is a directory: give a local directory to copy it into`, 'cp');
    }
    await pipeline(got.stream, count, io.stdout as NodeJS.WritableStream, { end: false });
    // The file is what stdout holds: nothing else is printed there.
    return { json: { path: src.path, size } };
  }
  const name = posix.basename(src.path.replace(/\/+$/, '')) || 'root';
  const target = local.endsWith('/') || isDirectory(local) ? join(local, name) : local;
  if (got.kind === 'directory') {
    mkdirSync(target, { recursive: true });
    // --no-same-owner: files belong to whoever runs cp, not to the sandbox's root.
    const tar = spawn('tar', ['-x', '--no-same-owner', '-C', target], { stdio: ['pipe', 'ignore', 'pipe'] });
    const failed = localTool(tar, 'tar -x');
    await pipeline(got.stream, count, tar.stdin);
    await failed;
    return done(size, `${target}/`, { path: target, size, kind: 'directory' }, 'directory');
  }
  // Checked before the transfer, so the error names the user's path, not the temporary file.
  if (!isDirectory(dirname(target))) {
    got.stream.destroy();
    throw new UsageError(`${dirname(target)}: no such local directory`, 'cp');
  }
  // Written beside, then renamed: a transfer cut off leaves the old file, not half a new one.
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.part`);
  try {
    await pipeline(got.stream, count, createWriteStream(temp, { mode: 0o644 }));
    renameSync(temp, target);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  return done(size, target, { path: target, size, kind: 'file' });
}

/** `statSync` with a message that names the path as the user typed it (not Node's `ENOENT: …, stat '…'`). */
function localStat(path: string): Stats {
  try {
    return statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new UsageError(`${path}: no such local file or directory`, 'cp');
    if (code === 'EACCES') throw new UsageError(`${path}: permission denied`, 'cp');
    throw err;
  }
}

/** The node's answer to a file written onto an existing directory (src/files/file-transfer.ts). */
function isDirectoryRefusal(err: unknown): boolean {
  return (
    err instanceof AlacarteApiError && err.code === 'invalid_request' && err.message.endsWith(IS_A_DIRECTORY)
  );
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Resolves when a local tool exited 0; rejects with its last error line otherwise. */
function localTool(child: ReturnType<typeof spawn>, what: string): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-2000);
  });
  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`${what}: ${err.message} (is tar installed?)`)));
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${what} failed: ${stderr.trim().split('\n').at(-1) ?? `exit ${code}`}`));
    });
  });
}

/** The line a copy prints: a directory's size is its tar archive's, which the line says. */
function done(size: number, where: string, json: Record<string, unknown>, kind?: 'directory'): Copied {
  const what = kind === 'directory' ? `a directory (a tar archive of ${size} bytes)` : `${size} bytes`;
  return { human: `copied ${what} to ${where}`, json };
}
