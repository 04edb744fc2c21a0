import type { Readable } from 'node:stream';
import { AlacarteError } from '../core/errors.js';
import { isBase64 } from './tool-inputs.js';

/**
 * The most bytes read_file returns (1 MiB, as exec's output cap): the content travels inside one
 * JSON tool result, base64 making it a third larger. Larger files: the Files API
 * (`GET /v1/leases/{id}/files`), which streams.
 */
export const MCP_READ_MAX_BYTES = 1024 * 1024;

/**
 * Reads `stream` into memory, at most `max` bytes: past that it is destroyed (the sandbox's reader
 * is killed with it) and `payload_too_large` thrown.
 */
export async function readCapped(stream: Readable, max: number, path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      size += bytes.length;
      if (size > max) {
        throw new AlacarteError(
          'payload_too_large',
          `${path} is larger than the ${max} bytes read_file returns; fetch it with GET /v1/leases/{id}/files (alacarte cp)`,
        );
      }
      chunks.push(bytes);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}

/** write_file's `content` as bytes, by its `encoding`; invalid base64 is `invalid_request`. */
export function contentBytes(content: string, encoding: 'utf8' | 'base64'): Buffer {
  if (encoding === 'utf8') return Buffer.from(content, 'utf8');
  if (!isBase64(content))
    throw new AlacarteError('invalid_request', 'content: not valid base64 (RFC 4648, padded)');
  return Buffer.from(content, 'base64');
}

/**
 * read_file's whole answer from a download (the node's Files API or the SDK's): read up to
 * MCP_READ_MAX_BYTES (over it, `payload_too_large`), then shaped by fileAnswer.
 */
export async function readFileBody(
  download: { kind: 'file' | 'directory'; stream: Readable },
  path: string,
  encoding: 'utf8' | 'base64',
): Promise<Record<string, unknown>> {
  const bytes = await readCapped(download.stream, MCP_READ_MAX_BYTES, path);
  return fileAnswer(path, download.kind, bytes, encoding);
}

/** read_file's answer: the content in the encoding asked for; a directory comes as a tar archive. */
export function fileAnswer(
  path: string,
  kind: 'file' | 'directory',
  bytes: Buffer,
  encoding: 'utf8' | 'base64',
): Record<string, unknown> {
  // A tar archive is bytes: text would mangle it.
  const as = kind === 'directory' ? 'base64' : encoding;
  return {
    path,
    kind,
    size: bytes.length,
    encoding: as,
    content: bytes.toString(as),
    ...(kind === 'directory' ? { format: 'tar' } : {}),
  };
}
