import { Agent, request } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../src/http/app.js';
import { silentLogger } from '../../../src/log.js';

/**
 * Closing the HTTP front (a node's SIGTERM) lets the requests under way that change something
 * finish, within a bound, and answers the ones arriving meanwhile 503; streams do not hold it.
 */
let app: FastifyInstance | undefined;
const agents: Agent[] = [];
afterEach(async () => {
  await app?.close();
  app = undefined;
  for (const agent of agents.splice(0)) agent.destroy();
});

/** A gate a slow route waits at, opened by the test. */
function gate(): { wait: Promise<void>; open: () => void; reached: Promise<void>; arrive: () => void } {
  let open = () => {};
  let arrive = () => {};
  const wait = new Promise<void>((r) => {
    open = r;
  });
  const reached = new Promise<void>((r) => {
    arrive = r;
  });
  return { wait, open, reached, arrive };
}

async function serve(drainMs: number, slow: ReturnType<typeof gate>): Promise<number> {
  app = await buildApp({
    logger: silentLogger(),
    bodyLimitBytes: 1024,
    drainMs,
    plugins: [
      {
        prefix: '',
        plugin: async (a) => {
          a.post('/slow', async () => {
            slow.arrive();
            await slow.wait;
            return { done: true };
          });
          a.post('/fast', async () => ({ fast: true }));
          // An event stream: answers its head, then never ends.
          a.get('/stream', (_request, reply) => {
            reply.hijack();
            reply.raw.writeHead(200, { 'content-type': 'text/event-stream' });
            reply.raw.write(': open\n\n');
          });
        },
      },
    ],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

/** One request on a connection of its own; resolves with the status and body, or the socket error. */
function send(
  port: number,
  method: string,
  path: string,
): Promise<{ status: number; body: string; retryAfter?: string; connection?: string } | { error: string }> {
  const agent = new Agent({ keepAlive: false });
  agents.push(agent);
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        // The stream's first event: enough to know it is open.
        if (path === '/stream') resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body,
          ...(res.statusCode === 503
            ? { retryAfter: res.headers['retry-after'], connection: res.headers.connection }
            : {}),
        }),
      );
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('error', (err) => resolve({ error: err.message }));
    req.end();
  });
}

describe('HTTP front close', () => {
  it('lets a request under way finish and answers 503 to one arriving meanwhile; an open stream does not hold it', async () => {
    const slow = gate();
    const port = await serve(10_000, slow);
    expect(await send(port, 'GET', '/stream')).toMatchObject({ status: 200 });
    const underWay = send(port, 'POST', '/slow');
    await slow.reached;
    let closed = false;
    const closing = app!.close().then(() => {
      closed = true;
    });
    // Meanwhile: a new request is refused, clearly (API.md's error shape; the mint's in NUT's),
    // and the close waits.
    const refused = await send(port, 'POST', '/fast');
    expect(refused).toMatchObject({ status: 503, retryAfter: '1', connection: 'close' });
    expect(JSON.parse((refused as { body: string }).body)).toEqual({
      error: 'no_capacity',
      message: expect.stringMatching(/shutting down/),
    });
    const mint = await send(port, 'POST', '/mint/v1/swap');
    expect(mint).toMatchObject({ status: 503, retryAfter: '1' });
    expect(JSON.parse((mint as { body: string }).body)).toEqual({
      detail: expect.stringMatching(/shutting down/),
      code: 10000,
    });
    expect(closed).toBe(false);
    slow.open();
    expect(await underWay).toEqual({ status: 200, body: '{"done":true}' });
    await closing;
    app = undefined;
  });

  it('waits for a request that never finishes no longer than its bound, then cuts it', async () => {
    const slow = gate();
    const port = await serve(300, slow);
    const underWay = send(port, 'POST', '/slow');
    await slow.reached;
    const started = Date.now();
    await app!.close();
    app = undefined;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(await underWay).toHaveProperty('error');
    slow.open();
  });
});
