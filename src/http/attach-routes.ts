import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { AlacarteError } from '../core/errors.js';
import type { LeaseId } from '../core/ids.js';
import type { AttachSession } from '../drivers/compute-driver.js';
import { endedText } from '../leases/deadline-notices.js';
import type { LeaseService } from '../leases/lease-service.js';
import { bearerOf } from './lease-schemas.js';
import {
  CLOSE_TOO_BIG,
  DEFAULT_TERMINAL_LIMITS,
  EarlyInput,
  relayTerminal,
  terminalInput,
} from './terminal-bridge.js';

/** The answer to a plain HTTP GET of the attach route (it only speaks WebSocket). */
export const NOT_A_WEBSOCKET =
  'this is a WebSocket: connect with Upgrade: websocket (or run: alacarte shell ID); for one command, POST /v1/leases/{id}/exec';

/** Browsers cannot set headers on a WebSocket: they send the credential as a subprotocol. */
export const BEARER_PROTOCOL_PREFIX = 'bearer.';

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
 * bytes both ways; a text frame `{"type":"resize","cols","rows"}` resizes, any other text is
 * dropped. Every buffer between socket and shell is bounded (terminal-bridge.ts). The credential
 * is checked before the upgrade, so a refusal is an ordinary 401/409 answer.
 */
export function attachRoutes(leases: LeaseService): FastifyPluginAsync {
  return async (app) => {
    app.route<{ Params: { id: string } }>({
      method: 'GET',
      url: '/leases/:id/attach',
      preValidation: async (request) => {
        (request as AttachRequest).leaseId = await leases.authorizeAttach(
          request.params.id,
          attachCredential(request),
        );
      },
      // A plain GET (no Upgrade) would otherwise get the WebSocket plugin's bare, bodiless 404:
      // say, in the API's error shape, that this is a WebSocket and how to reach it.
      handler: async () => {
        throw new AlacarteError('invalid_request', NOT_A_WEBSOCKET);
      },
      wsHandler: async (socket, request) => {
        const leaseId = (request as AttachRequest).leaseId;
        if (!leaseId) return socket.close(1008, 'unauthorized');
        await bridge(socket, leases, leaseId, request);
      },
    });
  };
}

type AttachRequest = FastifyRequest & { leaseId?: LeaseId };

async function bridge(
  socket: WebSocket,
  leases: LeaseService,
  leaseId: LeaseId,
  request: FastifyRequest,
): Promise<void> {
  // What arrives while the shell starts is kept, in order and up to a byte cap, and replayed once
  // it runs; a client that sends more is cut off rather than buffered without end.
  const early = new EarlyInput(DEFAULT_TERMINAL_LIMITS.earlyInputBytes);
  const buffer = (data: RawData, isBinary: boolean) => {
    if (!early.add(terminalInput(data, isBinary)) && socket.readyState === socket.OPEN) {
      socket.close(CLOSE_TOO_BIG, 'too much input before the shell started');
    }
  };
  socket.on('message', buffer);
  let session: AttachSession;
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
  } finally {
    socket.off('message', buffer);
  }
  // A line on the terminal 5 and 1 minute before the lease ends (after an extension, again).
  const unsubscribe = leases.deadlineNotices.subscribe(leaseId, (notice) => {
    if (socket.readyState === socket.OPEN) socket.send(Buffer.from(notice.text, 'utf8'), { binary: true });
  });
  socket.once('close', unsubscribe);
  try {
    // A shell killed with its lease says so, as SSH does, rather than end on a bare status.
    const farewell = async () => ((await leases.hasEnded(leaseId)) ? endedText(leaseId) : undefined);
    await relayTerminal(socket, session, early.take(), DEFAULT_TERMINAL_LIMITS, farewell);
  } finally {
    unsubscribe();
  }
}
