import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port of the kernel's ephemeral range (outgoing connections, `listen(0)`); Linux's default when unreadable. */
function ephemeralLow(): number {
  try {
    const low = Number.parseInt(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8'), 10);
    return Number.isSafeInteger(low) && low > 0 ? low : 32768;
  } catch {
    return 32768;
  }
}

/** Whether a loopback listener can take `port` now (0: resolves with the port the kernel gave). */
function listenOn(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const taken = typeof address === 'object' && address ? address.port : undefined;
      server.close(() => resolve(taken));
    });
  });
}

/**
 * A loopback port free now, for a server a test starts on it later or starts again on the same
 * port (a node's URL and mint URL): picked at random below the kernel's ephemeral range, where
 * neither an outgoing connection nor another test's `listen(0)` can take it meanwhile. A port
 * `listen(0)` hands out is an ephemeral one, and in the seconds before the server listens any
 * connection on the host may get it as its local port (CI saw a replica refuse to start on one).
 */
export async function freePort(): Promise<number> {
  const max = ephemeralLow() - 1;
  const min = 10_000;
  if (max > min) {
    for (let i = 0; i < 100; i++) {
      const port = randomInt(min, max + 1);
      if ((await listenOn(port)) === port) return port;
    }
  }
  const port = await listenOn(0);
  if (port === undefined) throw new Error('no loopback port could be listened on');
  return port;
}
