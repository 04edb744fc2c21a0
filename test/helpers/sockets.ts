import { connect, type Socket } from 'node:net';

/** A client TCP connection and whether the other side has closed it yet. */
export interface WatchedSocket {
  socket: Socket;
  closed: () => boolean;
}

/**
 * Opens a TCP connection to `host:port`, resolved once connected (rejected if it fails before).
 * Errors after that are swallowed: tests watch `closed()` to see a server drop the connection.
 */
export function openSocket(port: number, host = '127.0.0.1'): Promise<WatchedSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let closed = false;
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve({ socket, closed: () => closed }));
    socket.once('error', reject);
  });
}
