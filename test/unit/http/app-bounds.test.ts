import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp, DEFAULT_MAX_CONNECTIONS, MAX_HEADER_BYTES } from '../../../src/http/app.js';
import { silentLogger } from '../../../src/log.js';
import { openSocket } from '../../helpers/sockets.js';

/**
 * Issue 9, section 3: what a client can make the HTTP front hold is bounded — the connections it
 * keeps open, and so the request heads (up to MAX_HEADER_BYTES each) arriving on them.
 */
let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function serve(maxConnections?: number): Promise<number> {
  app = await buildApp({ logger: silentLogger(), bodyLimitBytes: 1024 * 1024, maxConnections });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

describe('HTTP front bounds', () => {
  it('holds a bounded number of connections; the rest are closed as they arrive', async () => {
    const port = await serve(4);
    // Slow clients: each sends part of a head and then nothing.
    const conns = [];
    for (let i = 0; i < 6; i++) {
      const c = await openSocket(port);
      c.socket.write(`GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ${'a'.repeat(1000)}`);
      conns.push(c);
    }
    await sleep(500);
    expect(conns.filter((c) => c.closed()).length).toBe(2);
    for (const c of conns) c.socket.destroy();
    await sleep(200);
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(res.status).toBe(200);
  });

  it('has a default bound that keeps the heads of all connections under ~100 MiB', async () => {
    await serve();
    expect(app?.server.maxConnections).toBe(DEFAULT_MAX_CONNECTIONS);
    expect(DEFAULT_MAX_CONNECTIONS * MAX_HEADER_BYTES).toBeLessThanOrEqual(100 * 1024 * 1024);
  });
});
