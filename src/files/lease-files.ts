import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { AlacarteError } from '../core/errors.js';
import type { LeaseId } from '../core/ids.js';
import type { SandboxProcess } from '../drivers/compute-driver.js';
import {
  type Download,
  openDownload,
  parseFileMode,
  parseSandboxPath,
  receiveInto,
  runToEnd,
  type TransferContext,
} from './file-transfer.js';
import {
  commitFileCommand,
  commitUnpackCommand,
  readPathCommand,
  removeUnpackCommand,
  removeUploadCommand,
  stageFileCommand,
  stageUnpackCommand,
} from './sandbox-commands.js';

/** What the files API needs of the lease service (LeaseService implements it). */
export interface FileHost {
  /** Checks credential and running state (`unauthorized`, `lease_not_running`); the lease's disk. */
  authorizeFiles(id: string, credential: string | undefined): Promise<{ leaseId: LeaseId; diskMib: number }>;
  spawnForFiles(leaseId: LeaseId, command: string[]): Promise<SandboxProcess>;
  sandboxRunning(leaseId: LeaseId): Promise<boolean>;
}

/** A PUT of the files API, as the HTTP layer received it (query values not yet checked). */
export interface WriteRequest {
  leaseId: string;
  credential: string | undefined;
  path: unknown;
  mode: unknown;
  /** The body is a tar archive to unpack into the directory `path`. */
  tar: boolean;
  body: Readable;
  /** The announced length (Content-Length), when there is one. */
  contentLength?: number;
}

const MIB = 1024 * 1024;

/**
 * The files API of API.md: writes and reads in a lease's sandbox, every byte passing through a
 * process inside it (sandbox-commands.ts), bounded by the lease's disk. Errors are AlacarteErrors
 * with the API's codes.
 */
export class LeaseFiles {
  constructor(private readonly host: FileHost) {}

  /**
   * Writes `body` to the file `path`, or unpacks it (a tar archive) into the directory `path`.
   * Returns the path and the bytes received. A file that cannot be written completely leaves the
   * old file or none; a tar archive that fails part-way leaves what was unpacked before.
   */
  async write(request: WriteRequest): Promise<{ path: string; size: number }> {
    const path = parseSandboxPath(request.path);
    const mode = parseFileMode(request.mode);
    if (request.tar && mode !== undefined)
      throw new AlacarteError(
        'invalid_request',
        'mode applies to a file; a tar archive carries its own modes',
      );
    if (!request.tar && path.endsWith('/'))
      throw new AlacarteError(
        'invalid_request',
        'path names a directory: give the file name, or send a tar archive',
      );
    const { leaseId, diskMib } = await this.host.authorizeFiles(request.leaseId, request.credential);
    const maxBytes = diskMib * MIB;
    if (request.contentLength !== undefined && request.contentLength > maxBytes) {
      throw new AlacarteError(
        'payload_too_large',
        `${path} does not fit in the lease's disk (${diskMib} MiB)`,
      );
    }
    const upload = randomBytes(8).toString('hex');
    const stage = request.tar
      ? stageUnpackCommand(path, upload)
      : stageFileCommand(path, { upload, size: request.contentLength });
    const process = await this.host.spawnForFiles(leaseId, stage);
    try {
      const size = await receiveInto(this.context(leaseId, process, maxBytes), request.body, path);
      // Only a body seen whole here replaces anything: the staging process cannot tell an upload
      // cut off (its stdin closed early) from a whole one.
      const commit = request.tar
        ? commitUnpackCommand(path, upload)
        : commitFileCommand(path, { mode, upload });
      await runToEnd(this.context(leaseId, await this.host.spawnForFiles(leaseId, commit), maxBytes), path);
      return { path, size };
    } catch (err) {
      // A killed writer could not remove its temporary file itself.
      if (!(err instanceof AlacarteError && err.code === 'lease_not_running')) {
        void this.removeUpload(
          leaseId,
          request.tar ? removeUnpackCommand(path, upload) : removeUploadCommand(path, upload),
        );
      }
      throw err;
    }
  }

  /** Reads the file `path`, or a tar archive of the directory `path`, as a stream. */
  async read(request: {
    leaseId: string;
    credential: string | undefined;
    path: unknown;
    /** The client went away before the answer began: the reader is killed. */
    signal?: AbortSignal;
  }): Promise<Download> {
    const path = parseSandboxPath(request.path);
    const { leaseId, diskMib } = await this.host.authorizeFiles(request.leaseId, request.credential);
    const maxBytes = diskMib * MIB;
    const process = await this.host.spawnForFiles(leaseId, readPathCommand(path, maxBytes));
    const gone = () => process.kill();
    request.signal?.addEventListener('abort', gone, { once: true });
    if (request.signal?.aborted) gone();
    try {
      return await openDownload(this.context(leaseId, process, maxBytes), path);
    } finally {
      // From the answer on, the download's stream ends the reader when the client goes.
      request.signal?.removeEventListener('abort', gone);
    }
  }

  private context(leaseId: LeaseId, process: SandboxProcess, maxBytes: number): TransferContext {
    return { process, maxBytes, isRunning: () => this.host.sandboxRunning(leaseId) };
  }

  private async removeUpload(leaseId: LeaseId, command: string[]): Promise<void> {
    try {
      const process = await this.host.spawnForFiles(leaseId, command);
      process.stdin.end();
      process.stdout.resume();
      process.stderr.resume();
      await process.exited;
    } catch {
      // The sandbox ended or is busy: its files go with it, or the leftover is a hidden file.
    }
  }
}
