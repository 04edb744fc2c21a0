import { connect, type Socket } from 'node:net';
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

async function serve(
  maxConnections?: number,
  more: { maxConnectionsPerAddress?: number; trustProxy?: string[] } = {},
): Promise<number> {
  app = await buildApp({
    logger: silentLogger(),
    bodyLimitBytes: 1024 * 1024,
    maxConnections,
    ...more,
    plugins: [
      { prefix: '', plugin: async (a) => void a.get('/whoami', async (request) => ({ ip: request.ip })) },
    ],
  });
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

  it('one client address cannot take every connection: past half of them it gets no more', async () => {
    const port = await serve(20, { maxConnectionsPerAddress: 4 });
    // A slow client on 127.0.0.2 opens 30 connections and keeps each one half-sent.
    const flood = await slowClients(port, '127.0.0.2', 30);
    await sleep(500);
    // It keeps half of all (10): past that, its new connections were closed as they arrived.
    expect(flood.filter((c) => !c.closed).length).toBe(10);
    // Anyone else (127.0.0.1) still gets in.
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) });
    expect(res.status).toBe(200);
    for (const c of flood) c.socket.destroy();
  });

  it('believes X-Forwarded-For only from the proxies in trustProxy, and does not bound them', async () => {
    const port = await serve(20, { maxConnectionsPerAddress: 4, trustProxy: ['127.0.0.2'] });
    const whoami = async (localAddress: string) => {
      const body = await new Promise<string>((resolve, reject) => {
        const socket = connect({ port, host: '127.0.0.1', localAddress });
        let text = '';
        socket.on('data', (d) => {
          text += d.toString();
        });
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
        socket.write(
          'GET /whoami HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 198.51.100.7\r\nconnection: close\r\n\r\n',
        );
      });
      return JSON.parse(body.slice(body.indexOf('{'))).ip as string;
    };
    expect(await whoami('127.0.0.2')).toBe('198.51.100.7');
    expect(await whoami('127.0.0.1')).toBe('127.0.0.1');
    // The proxy may hold more than 4, up to the server's own bound.
    const proxied = await slowClients(port, '127.0.0.2', 12);
    await sleep(300);
    expect(proxied.filter((c) => !c.closed).length).toBe(12);
    for (const c of proxied) c.socket.destroy();
  });
});

/** `n` connections from `localAddress`, each sending half a request head and then nothing. */
async function slowClients(port: number, localAddress: string, n: number) {
  const clients: Array<{ socket: Socket; closed: boolean }> = [];
  for (let i = 0; i < n; i++) {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    const client = { socket, closed: false };
    socket.on('close', () => {
      client.closed = true;
    });
    socket.on('error', () => undefined);
    socket.on('connect', () => socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\n'));
    clients.push(client);
    await new Promise((r) => setTimeout(r, 5));
  }
  return clients;
}
