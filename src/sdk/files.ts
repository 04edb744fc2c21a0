import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { AlacarteApiError, AlacarteNetworkError } from './errors.js';

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** What files.write() sends: bytes, text, or a stream (Node or web) read as it goes. */
export type FileData =
  | Uint8Array
  | string
  | Readable
  | WebReadableStream<Uint8Array>
  | ReadableStream<Uint8Array>;

export interface WriteFileOptions {
  /** Octal mode such as '0755' (default: an existing file's, else 0644). */
  mode?: string;
  /** `data` is a tar archive to unpack into the directory `path` (Content-Type application/x-tar). */
  tar?: boolean;
  /**
   * Length of a stream in bytes, sent as Content-Length: the node refuses (413) what is larger than
   * the lease's disk before reading it, and keeps the old file if fewer bytes arrive.
   */
  size?: number;
  /** The lease's credential, when it is not in this machine's lease book. */
  token?: string;
}

/** A download: a file's bytes, or a tar archive of a directory, as a stream. */
export interface FileDownload {
  kind: 'file' | 'directory';
  /** The content; it errors if the transfer is cut off (the node ends it early on a failure). */
  stream: Readable;
  /** Reads the whole content into memory (for small files). */
  bytes(): Promise<Buffer>;
}

/** Where a lease's API is and its credential (the client's lease book, or a token given). */
export type CredentialOf = (id: string, token: string | undefined) => { url: string; token: string };

/**
 * The files API of a lease (API.md "Files"): `Alacarte.files`. Both directions stream: nothing is
 * held in memory unless asked (`bytes()`).
 *
 * ```ts
 * await alacarte.files.write(lease.id, '/root/data.bin', await readFile('data.bin'));
 * const copy = await (await alacarte.files.read(lease.id, '/root/data.bin')).bytes();
 * ```
 */
export class LeaseFilesClient {
  constructor(
    private readonly credential: CredentialOf,
    private readonly fetchImpl: FetchLike,
  ) {}

  /**
   * Writes `data` to the file `path` in the lease's sandbox (parents made), or unpacks it into the
   * directory `path` with `tar: true`. Resolves with the path and the bytes the node received.
   * Throws AlacarteApiError (`payload_too_large`, `not_found`, `lease_not_running`, `unauthorized`,
   * `invalid_request`) or AlacarteNetworkError.
   */
  async write(
    id: string,
    path: string,
    data: FileData,
    options: WriteFileOptions = {},
  ): Promise<{ path: string; size: number }> {
    const { url, token } = this.credential(id, options.token);
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      'content-type': options.tar ? 'application/x-tar' : 'application/octet-stream',
    };
    let body: RequestInit['body'];
    if (typeof data === 'string' || data instanceof Uint8Array) {
      body = data as RequestInit['body'];
    } else {
      body = (data instanceof Readable ? Readable.toWeb(data) : data) as unknown as RequestInit['body'];
      if (options.size !== undefined) headers['content-length'] = String(options.size);
    }
    const query = options.mode === undefined ? '' : `&mode=${encodeURIComponent(options.mode)}`;
    const res = await this.send(this.urlOf(url, id, path) + query, {
      method: 'PUT',
      headers,
      body,
      duplex: 'half',
    } as RequestInit);
    const answer = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (res.status !== 201) throw errorOf(res, answer);
    return { path: String(answer.path), size: Number(answer.size) };
  }

  /**
   * Reads the file `path` from the lease's sandbox, or a tar archive of the directory `path`.
   * Throws AlacarteApiError (`not_found`, `payload_too_large` for more than the lease's disk,
   * `lease_not_running`, `unauthorized`, `invalid_request`) or AlacarteNetworkError.
   */
  async read(id: string, path: string, options: { token?: string } = {}): Promise<FileDownload> {
    const { url, token } = this.credential(id, options.token);
    const res = await this.send(this.urlOf(url, id, path), { headers: { authorization: `Bearer ${token}` } });
    if (res.status !== 200 || !res.body) {
      const answer = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      throw errorOf(res, answer);
    }
    const kind = res.headers.get('content-type')?.startsWith('application/x-tar') ? 'directory' : 'file';
    const stream = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    return {
      kind,
      stream,
      async bytes() {
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks);
      },
    };
  }

  private urlOf(base: string, id: string, path: string): string {
    return `${base}/v1/leases/${encodeURIComponent(id)}/files?path=${encodeURIComponent(path)}`;
  }

  private async send(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.fetchImpl(url, init);
    } catch (err) {
      throw new AlacarteNetworkError(url.slice(0, url.indexOf('?')), { cause: err });
    }
  }
}

function errorOf(res: Response, body: Record<string, unknown>): AlacarteApiError {
  const code = typeof body.error === 'string' ? body.error : `http_${res.status}`;
  const message = typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
  return new AlacarteApiError(code, res.status, message, body);
}
