import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { z } from 'zod';
import { AlacarteError } from '../core/errors.js';
import type { LeaseId } from '../core/ids.js';
import type { LeaseService } from '../leases/lease-service.js';
import { bearerOf } from './lease-schemas.js';

/** Browsers cannot set headers on a WebSocket: they send the credential as a subprotocol. */
export const BEARER_PROTOCOL_PREFIX = 'bearer.';

const resizeMessage = z
  .object({
    type: z.literal('resize'),
    cols: z.number().int().min(1).max(1000),
    rows: z.number().int().min(1).max(1000),
  })
  .strict();

/** The credential from `Authorization: Bearer` or from a `bearer.<token>` subprotocol. */
export function attachCredential(request: Pick<FastifyRequest, 'headers'>): string | undefined {
  const fromHeader = bearerOf(request.headers.authorization);
  if (fromHeader) return fromHeader;
  const protocols = request.headers['sec-websocket-protocol'];
  if (typeof protocols !== 'string' || protocols.length > 2048) return undefined;
  const offered = protocols.split(',').map((p) => p.trim());
  const bearer = offered.find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX));
  return bearer?.slice(BEARER_PROTOCOL_PREFIX.length) || undefined;
}

/**
 * GET /v1/leases/{id}/attach: a WebSocket to an interactive shell. Binary frames carry terminal
 * bytes both ways; a text frame `{"type":"resize","cols","rows"}` resizes, other text is typed.
 * The credential is checked before the upgrade, so a refusal is an ordinary 401/409 answer.
 */
export function attachRoutes(leases: LeaseService): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Params: { id: string } }>(
      '/leases/:id/attach',
      {
        websocket: true,
        preValidation: async (request) => {
          (request as AttachRequest).leaseId = await leases.authorizeAttach(
            request.params.id,
            attachCredential(request),
          );
        },
      },
      async (socket, request) => {
        const leaseId = (request as AttachRequest).leaseId;
        if (!leaseId) return socket.close(1008, 'unauthorized');
        await bridge(socket, leases, leaseId, request);
      },
    );
  };
}

type AttachRequest = FastifyRequest & { leaseId?: LeaseId };

async function bridge(
  socket: WebSocket,
  leases: LeaseService,
  leaseId: LeaseId,
  request: FastifyRequest,
): Promise<void> {
  // Messages that arrive while the shell starts are kept, in order, and replayed once it runs.
  const early: Array<[RawData, boolean]> = [];
  const buffer = (data: RawData, isBinary: boolean) => early.push([data, isBinary]);
  socket.on('message', buffer);
  let session: Awaited<ReturnType<LeaseService['attach']>>;
  try {
    session = await leases.attach(leaseId, { cols: 80, rows: 24 });
  } catch (err) {
    if (err instanceof AlacarteError && err.code === 'rate_limited') {
      socket.close(1013, err.message); // "try again later"
      return;
    }
    request.log.warn({ err: String(err), lease: leaseId }, 'attach failed');
    socket.close(1011, 'the sandbox shell could not start');
    return;
  }
  const onMessage = (data: RawData, isBinary: boolean) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (!isBinary) {
      const resize = parseResize(bytes.toString('utf8'));
      if (resize) {
        session.resize(resize).catch(() => undefined);
        return;
      }
    }
    session.stream.write(bytes);
  };
  socket.off('message', buffer);
  for (const [data, isBinary] of early) onMessage(data, isBinary);
  socket.on('message', onMessage);
  session.stream.on('data', (chunk: Buffer) => {
    if (socket.readyState === socket.OPEN) socket.send(chunk, { binary: true });
  });
  socket.on('close', () => session.close());
  socket.on('error', () => session.close());
  const code = await session.exited;
  if (socket.readyState === socket.OPEN) socket.close(1000, `exit ${code}`);
}

function parseResize(text: string): { cols: number; rows: number } | undefined {
  if (!text.startsWith('{') || text.length > 200) return undefined;
  try {
    const parsed = resizeMessage.safeParse(JSON.parse(text));
    return parsed.success ? { cols: parsed.data.cols, rows: parsed.data.rows } : undefined;
  } catch {
    return undefined;
  }
}
