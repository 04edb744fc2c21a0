import type { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { AlacarteError } from '../core/errors.js';
import type { LeaseFiles } from '../files/lease-files.js';
import { bearerOf } from './lease-schemas.js';

/** The content type that makes a PUT a tar archive to unpack, and a directory's GET answer. */
export const TAR_CONTENT_TYPE = 'application/x-tar';

/**
 * PUT and GET /v1/leases/{id}/files (API.md "Files"). Bodies are never parsed or buffered here:
 * this plugin's only content-type parser hands the request stream on, whatever the type (a JSON
 * file stays bytes), so the node's bodyLimit does not apply; the lease's disk bounds a body instead
 * (file-transfer.ts).
 */
export function fileRoutes(files: LeaseFiles): FastifyPluginAsync {
  return async (app) => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

    app.put<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
      '/leases/:id/files',
      async (request, reply) => {
        const result = await files.write({
          leaseId: request.params.id,
          credential: bearerOf(request.headers.authorization),
          path: request.query.path,
          mode: request.query.mode,
          tar: isTar(request.headers['content-type']),
          body: bodyOf(request),
          contentLength: contentLengthOf(request),
        });
        return reply.status(201).send(result);
      },
    );

    app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
      '/leases/:id/files',
      // A HEAD would run the read in the sandbox and drop its bytes: not offered.
      { exposeHeadRoute: false },
      async (request, reply) => {
        // A client that goes before the answer begins (the reader waits for the file's first
        // bytes) ends the reader in the sandbox.
        const gone = new AbortController();
        reply.raw.once('close', () => gone.abort());
        const download = await files.read({
          leaseId: request.params.id,
          credential: bearerOf(request.headers.authorization),
          path: request.query.path,
          signal: gone.signal,
        });
        reply.header(
          'content-type',
          download.kind === 'directory' ? TAR_CONTENT_TYPE : 'application/octet-stream',
        );
        reply.header('cache-control', 'no-store');
        reply.header('x-content-type-options', 'nosniff');
        return reply.status(200).send(download.stream);
      },
    );
  };
}

function isTar(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() === TAR_CONTENT_TYPE;
}

/** The request stream as the parser passed it, or the raw request when Fastify ran none (no body). */
function bodyOf(request: FastifyRequest): Readable {
  const body = request.body as Readable | undefined;
  return body && typeof body.on === 'function' ? body : request.raw;
}

function contentLengthOf(request: FastifyRequest): number | undefined {
  if (request.headers['transfer-encoding'] !== undefined) return undefined;
  const header = request.headers['content-length'];
  if (header === undefined) return 0;
  if (!/^[0-9]{1,15}$/.test(header)) throw new AlacarteError('invalid_request', 'bad Content-Length');
  return Number(header);
}
