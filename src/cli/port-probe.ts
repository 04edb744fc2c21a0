import { createServer } from 'node:net';

/**
 * Tries to listen on `host:port` and lets go at once: resolves with the listen error (EADDRINUSE
 * for a taken port, EADDRNOTAVAIL for a --host this machine does not have), or undefined when
 * the port is free. `alacarte serve` asks before it prepares images and sandboxes (seconds, and
 * on a first start minutes), so that a taken port is said first, not after all that.
 * Port 0 (any free port) is asked too: a wrong host fails there as well. The port may still be
 * taken between this and the real listen; that listen reports it the same way.
 */
export function listenProbe(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}
