import { Readable, Transform } from 'node:stream';
import { AlacarteError } from '../core/errors.js';
import type { SandboxProcess } from '../drivers/compute-driver.js';
import { DOWNLOAD_MARK, FILE_EXIT } from './sandbox-commands.js';

/**
 * Moving bytes between an HTTP body and a process in the sandbox (sandbox-commands.ts), streamed
 * and back-pressured both ways: the node holds a few pipe buffers of a transfer, never the file.
 */

/** Longest path accepted, in UTF-8 bytes: Linux's PATH_MAX. */
export const MAX_PATH_BYTES = 4096;

/** What stderr of a transfer process the node keeps, to tell "disk full" from other failures. */
const STDERR_TAIL_BYTES = 4096;

/**
 * Checks a path of the files API: absolute, at most MAX_PATH_BYTES, no NUL, valid Unicode (it is
 * passed as an argument, a C string). Throws `invalid_request`. `..` and symlinks are allowed:
 * they are resolved inside the sandbox, where they cannot leave it.
 */
export function parseSandboxPath(input: unknown): string {
  if (typeof input !== 'string' || input === '')
    throw new AlacarteError('invalid_request', 'path: one absolute path is required');
  if (!input.startsWith('/')) throw new AlacarteError('invalid_request', 'path must be absolute');
  if (Buffer.byteLength(input, 'utf8') > MAX_PATH_BYTES)
    throw new AlacarteError('invalid_request', `path is longer than ${MAX_PATH_BYTES} bytes`);
  if (input.includes('\0')) throw new AlacarteError('invalid_request', 'path must not contain NUL');
  if (/\p{Cs}/u.test(input)) throw new AlacarteError('invalid_request', 'path must be valid Unicode');
  return input;
}

/** A file mode of the files API: 3 or 4 octal digits, e.g. `0644`, `755`, `4755`. */
export function parseFileMode(input: unknown): string | undefined {
  if (input === undefined) return undefined;
  if (typeof input !== 'string' || !/^[0-7]{3,4}$/.test(input))
    throw new AlacarteError('invalid_request', 'mode must be 3 or 4 octal digits, e.g. 0644');
  return input;
}

/** What a transfer needs besides its process: its bound and a way to tell a sandbox that ended. */
export interface TransferContext {
  process: SandboxProcess;
  /** The lease's disk, in bytes: nothing larger is written or read. */
  maxBytes: number;
  /** Whether the sandbox still runs, asked after a failure to tell "lease ended" from the rest. */
  isRunning: () => Promise<boolean>;
}

/**
 * Feeds `body` to the process's stdin (a stageFileCommand or stageUnpackCommand) and waits for it.
 * Returns the number of bytes received. Throws AlacarteError: `payload_too_large` when the body
 * passes `maxBytes` or the sandbox's disk is full, `lease_not_running` when the sandbox ended,
 * `invalid_request` for anything else the sandbox refused (its message included). A body that
 * does not arrive in full (client gone) kills the process before its stdin is closed, so the
 * sandbox never takes a cut-off body for a whole one.
 */
export async function receiveInto(context: TransferContext, body: Readable, what: string): Promise<number> {
  const { process: proc, maxBytes } = context;
  const stderr = tailOf(proc.stderr);
  const fed = await feed(body, proc, maxBytes);
  if (fed.outcome === 'complete') proc.stdin.end();
  else if (fed.outcome !== 'process-ended') proc.kill();
  // What the client still sends after a refusal is read and dropped (Node does not once a body
  // has been read from), so that it gets to read the answer instead of blocking on a full socket.
  if (fed.outcome !== 'complete' && !body.readableEnded) body.resume();
  const code = await proc.exited;
  if (fed.outcome === 'too-large') throw tooLarge(what, maxBytes);
  if (fed.outcome === 'aborted') throw new AlacarteError('invalid_request', 'the request body was cut off');
  if (code === 0) return fed.size;
  throw await failure(context, code, stderr(), what, 'write');
}

/**
 * Runs a process that reads nothing (a commitFileCommand or commitUnpackCommand) to its end.
 * Throws AlacarteError as receiveInto does when it fails.
 */
export async function runToEnd(context: TransferContext, what: string): Promise<void> {
  const { process: proc } = context;
  const stderr = tailOf(proc.stderr);
  proc.stdin.end();
  proc.stdout.resume();
  const code = await proc.exited;
  if (code !== 0) throw await failure(context, code, stderr(), what, 'write');
}

type Fed = { outcome: 'complete' | 'too-large' | 'aborted' | 'process-ended'; size: number };

/** Pipes body → stdin by hand: on a failure stdin must stay open until the process is killed. */
function feed(body: Readable, proc: SandboxProcess, maxBytes: number): Promise<Fed> {
  return new Promise((resolve) => {
    let size = 0;
    let settled = false;
    const finish = (outcome: Fed['outcome']) => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      proc.stdin.off('drain', onDrain);
      resolve({ outcome, size });
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        body.pause();
        finish('too-large');
        return;
      }
      if (!proc.stdin.write(chunk)) body.pause();
    };
    const onDrain = () => {
      if (!settled) body.resume();
    };
    body.on('data', onData);
    proc.stdin.on('drain', onDrain);
    body.once('end', () => finish('complete'));
    body.once('error', () => finish('aborted'));
    body.once('close', () => finish(body.readableEnded ? 'complete' : 'aborted'));
    void proc.exited.then(() => finish('process-ended'));
  });
}

/** What GET /files streams: a file's bytes or a tar archive of a directory. */
export interface Download {
  kind: 'file' | 'directory';
  /** The content; it errors (and the HTTP answer is cut off) if the process fails on the way. */
  stream: Readable;
}

/**
 * Starts a download from a readPathCommand process: waits for its mark, then hands back its
 * stdout. Throws AlacarteError `not_found`, `payload_too_large` (larger than `maxBytes`),
 * `invalid_request` (not a regular file or directory), `lease_not_running`. The stream is cut
 * (errors) past twice `maxBytes` plus 16 MiB (tar headers of many small files), and when the
 * process ends with a failure; destroying it kills the process.
 */
export async function openDownload(context: TransferContext, what: string): Promise<Download> {
  const { process: proc, maxBytes } = context;
  const stderr = tailOf(proc.stderr);
  const mark = await readMark(proc.stdout);
  if (mark === 'bad') proc.kill();
  if (mark === undefined || mark === 'bad') {
    proc.stdout.resume();
    // The script ended (or closed its output) before its mark: it refused, its status says why.
    const code = await proc.exited;
    throw await failure(context, code, stderr(), what, 'read');
  }
  const kind = mark === DOWNLOAD_MARK.directory ? 'directory' : 'file';
  // Nothing is answered before the first byte or the process's end: a file that opens and then
  // cannot be read (/proc/1/mem, a device) is refused with its reason, not a 200 cut at once.
  const ended = await endedBeforeOutput(proc.stdout, proc.exited);
  if (ended !== undefined) {
    if (ended !== 0) throw await failure(context, ended, stderr(), what, 'read');
    return { kind, stream: Readable.from([]) };
  }
  const limit = kind === 'file' ? maxBytes : 2 * maxBytes + 16 * 1024 * 1024;
  let sent = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      sent += chunk.length;
      if (sent > limit) callback(new Error(`${what} grew past ${limit} bytes while being read`));
      else callback(null, chunk);
    },
    flush(callback) {
      proc.exited.then(
        (code) => callback(code === 0 ? null : new Error(`reading ${what} failed (exit ${code})`)),
        callback,
      );
    },
  });
  proc.stdout.pipe(stream);
  proc.stdout.once('error', (err) => stream.destroy(err));
  // A client that goes away, a cut: the process is killed (and with it what it started).
  stream.once('close', () => {
    if (!stream.writableFinished) proc.kill();
  });
  stream.once('error', () => proc.kill());
  return { kind, stream };
}

/**
 * Reads the two-byte mark the download script writes first: undefined if its output ended without
 * one, 'bad' if something else came (not from our script: it is killed).
 */
function readMark(stdout: Readable): Promise<string | undefined> {
  return new Promise((resolve) => {
    const done = (value: string | undefined) => {
      stdout.off('readable', tryRead);
      stdout.off('end', onEnd);
      stdout.off('close', onEnd);
      resolve(value);
    };
    const tryRead = () => {
      const head = stdout.read(2) as Buffer | null;
      if (head === null) return;
      const text = head.toString('latin1');
      if (text === DOWNLOAD_MARK.file || text === DOWNLOAD_MARK.directory) done(text);
      else done('bad');
    };
    const onEnd = () => done(undefined);
    stdout.on('readable', tryRead);
    stdout.once('end', onEnd);
    stdout.once('close', onEnd);
  });
}

/**
 * Waits for the first output after the mark (undefined) or, when the output ends without any, the
 * process's exit code.
 */
function endedBeforeOutput(stdout: Readable, exited: Promise<number>): Promise<number | undefined> {
  if (stdout.readableLength > 0) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const done = (value: Promise<number | undefined> | undefined) => {
      stdout.off('readable', onReadable);
      stdout.off('end', onEnd);
      stdout.off('close', onEnd);
      resolve(value);
    };
    // read(0) with nothing buffered lets the stream see its end (and emit 'end') without taking data.
    const onReadable = () => (stdout.readableLength > 0 ? done(undefined) : stdout.read(0));
    const onEnd = () => done(exited);
    stdout.on('readable', onReadable);
    stdout.once('end', onEnd);
    stdout.once('close', onEnd);
  });
}

/** Keeps the last STDERR_TAIL_BYTES of a stream, reading it to the end so the process never blocks. */
function tailOf(stream: Readable): () => string {
  let tail = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    tail = Buffer.concat([tail, chunk]);
    if (tail.length > STDERR_TAIL_BYTES) tail = tail.subarray(tail.length - STDERR_TAIL_BYTES);
  });
  stream.on('error', () => undefined);
  return () => tail.toString('utf8');
}

/**
 * The end of the message of a file written onto an existing directory (`400 invalid_request`):
 * `alacarte cp` recognises it to copy into that directory instead, as scp does.
 */
export const IS_A_DIRECTORY = 'is a directory (send a tar archive to unpack into it)';

/**
 * No process could be started in the sandbox (EAGAIN from fork: it runs as many as its offer's pids
 * allow), said by the transfer's shell (`can't fork`) or by the exec agent before it.
 */
const NO_PROCESS_LEFT = /can't fork|Resource temporarily unavailable/;

/** ENOSPC, EDQUOT, EFBIG, and ENOMEM (the writable layer is a tmpfs held in the sandbox's memory). */
const DISK_FULL = /No space left on device|Disk quota exceeded|File too large|Cannot allocate memory/;

async function failure(
  context: TransferContext,
  code: number,
  stderr: string,
  what: string,
  direction: 'read' | 'write',
): Promise<AlacarteError> {
  if (!(await context.isRunning())) return new AlacarteError('lease_not_running', 'the sandbox has ended');
  if (code === FILE_EXIT.notFound) return new AlacarteError('not_found', `${what} does not exist`);
  if (code === FILE_EXIT.tooLarge) return tooLarge(what, context.maxBytes);
  if (code === FILE_EXIT.notFileOrDirectory)
    return new AlacarteError('invalid_request', `${what} is not a regular file or a directory`);
  if (code === FILE_EXIT.isDirectory)
    return new AlacarteError('invalid_request', `${what} ${IS_A_DIRECTORY}`);
  if (DISK_FULL.test(stderr)) return tooLarge(what, context.maxBytes);
  // A valid request the sandbox has no room to serve right now (429, Retry-After), not a bad one.
  if (NO_PROCESS_LEFT.test(stderr))
    return new AlacarteError(
      'rate_limited',
      `the sandbox runs as many processes as its offer allows: none was left to ${direction} ${what}; try again once some have ended`,
    );
  // Killed from inside (the OOM killer of a sandbox whose memory holds its disk, or the tenant).
  if (direction === 'write' && code === 137)
    return new AlacarteError('payload_too_large', `writing ${what} was killed in the sandbox`);
  return new AlacarteError('invalid_request', `${what}: ${lastLine(stderr) || `failed (exit ${code})`}`);
}

function tooLarge(what: string, maxBytes: number): AlacarteError {
  return new AlacarteError(
    'payload_too_large',
    `${what} does not fit in the lease's disk (${Math.floor(maxBytes / (1024 * 1024))} MiB)`,
  );
}

/** The sandbox's last error line, printable and short: it goes into a JSON answer to the tenant. */
function lastLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  return (
    (lines.at(-1) ?? '')
      // The transfer script's own name and line (busybox sh's prefix) are the node's, not the tenant's.
      .replace(/^alacarte-(?:get|put): (?:line [0-9]+: )?/, '')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
      .replace(/[\u0000-\u001f\u007f]/g, '?')
      .slice(0, 300)
  );
}
