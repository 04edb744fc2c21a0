import type { FastifyInstance } from 'fastify';
import type { RawData } from 'ws';
import type { Nut17Hub } from '../nut-17.js';

/** A wallet that lets this much of our output pile up unread is cut off (bytes). */
const MAX_BUFFERED_BYTES = 1024 * 1024;

/**
 * GET /v1/ws (relative to the mint's prefix): the NUT-17 WebSocket. Frames go to the hub's
 * connection (nut-17.ts); the socket's own limits (64 KiB frames) are set where @fastify/websocket
 * is registered (http/app.ts). A wallet that stops reading is closed rather than buffered for.
 */
export function registerNut17(
  app: FastifyInstance,
  hub: Nut17Hub,
  /** The address a client's subscriptions are counted under (MintRoutesOptions.clientOf). */
  clientOf: (ip: string) => string = (ip) => ip,
): void {
  app.route({
    method: 'GET',
    url: '/v1/ws',
    // A plain GET gets the mint's error format, not an empty 404.
    handler: async (_request, reply) =>
      reply
        .code(426)
        .header('upgrade', 'websocket')
        .send({ detail: 'NUT-17: open a WebSocket here', code: 10000 }),
    wsHandler: (socket, request) => {
      const connection = hub.connect(
        {
          send: (text) => {
            if (socket.readyState !== socket.OPEN) return;
            if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
              socket.close(1008, 'notifications are not being read');
              return;
            }
            socket.send(text);
          },
          close: (code, reason) => socket.close(code, reason),
        },
        clientOf(request.ip),
      );
      if (connection === undefined) {
        socket.close(1013, 'too many connections; try again later');
        return;
      }
      socket.on('message', (data: RawData, isBinary: boolean) => {
        if (isBinary) return connection.receiveBinary();
        connection.receive(
          Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(toBuffers(data)).toString('utf8'),
        );
      });
      socket.on('close', () => connection.closed());
      socket.on('error', () => connection.closed());
    },
  });
}

function toBuffers(data: RawData): Buffer[] {
  if (Array.isArray(data)) return data;
  return [Buffer.from(data as ArrayBuffer)];
}
