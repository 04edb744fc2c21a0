import { request } from 'node:http';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { AlacarteError } from '../../../src/core/errors.js';
import type { LeaseId } from '../../../src/core/ids.js';
import { buildApp } from '../../../src/http/app.js';
import { attachRoutes } from '../../../src/http/attach-routes.js';
import { routePathMatches } from '../../../src/http/errors.js';
import { createLeaseBody, parseWith } from '../../../src/http/lease-schemas.js';
import type { LeaseService } from '../../../src/leases/lease-service.js';
import { silentLogger } from '../../../src/log.js';

/**
 * What someone trying the API by hand with curl is answered when they get a detail wrong: an
 * answer in the API's error shape that says what to do, never a bare status or a framework's
 * words.
 */
let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

const LEASE = 'lse_0000000000000000000000000a';
const CREDENTIAL = 'good-credential';

/** A lease service that knows one lease and whose sandbox shell never starts. */
const leases = {
  authorizeAttach: async (id: string, credential: string | undefined) => {
    if (id !== LEASE || credential !== CREDENTIAL)
      throw new AlacarteError('unauthorized', 'missing or wrong lease credential');
    return id as LeaseId;
  },
  attach: async () => {
    throw new Error('no sandbox in this test');
  },
} as unknown as LeaseService;

async function serve(logger = silentLogger(), service = leases): Promise<string> {
  app = await buildApp({
    logger,
    bodyLimitBytes: 1024 * 1024,
    plugins: [
      { prefix: '/v1', plugin: attachRoutes(service) },
      {
        prefix: '/v1',
        plugin: async (a) =>
          void a.post('/echo', async (request) => parseWith(createLeaseBody, request.body)),
      },
    ],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}

describe('answers to requests sent by hand', () => {
  it('a plain GET of the attach WebSocket says it is a WebSocket, as a JSON error', async () => {
    const host = await serve();
    const res = await fetch(`http://${host}/v1/leases/${LEASE}/attach`, {
      headers: { authorization: `Bearer ${CREDENTIAL}` },
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('invalid_request');
    expect(body.message).toContain('WebSocket');
    expect(body.message).toContain('alacarte shell');
  });

  it('a plain GET of the attach WebSocket without a credential is still 401', async () => {
    const host = await serve();
    const res = await fetch(`http://${host}/v1/leases/${LEASE}/attach`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'unauthorized' });
  });

  it('a WebSocket handshake that cannot succeed is answered 400 in the API shape, not in text/html', async () => {
    const host = await serve();
    const { hostname, port } = new URL(`http://${host}`);
    /** A raw handshake with `headers` (each `Name: value`); what comes back, head and body. */
    const handshake = (path: string, headers: string[]) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), hostname, () =>
          socket.write(
            `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`,
          ),
        );
        let got = '';
        socket.on('data', (c: Buffer) => {
          got += c.toString();
        });
        socket.on('close', () => resolve(got));
        socket.on('error', reject);
        setTimeout(() => socket.destroy(), 2000);
      });
    const upgrade = 'Upgrade: websocket';
    const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==';
    const version = 'Sec-WebSocket-Version: 13';
    const good = [upgrade, key, version];
    const attach = `/v1/leases/${LEASE}/attach`;
    for (const [headers, message] of [
      [
        [upgrade, 'Sec-WebSocket-Key: short', version],
        'Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455)',
      ],
      [[upgrade, key, 'Sec-WebSocket-Version: 99'], 'Sec-WebSocket-Version must be 13'],
      [['Upgrade: h2c', key, version], 'Upgrade must be websocket'],
      [['Upgrade: foo, websocket', key, version], 'Upgrade must be websocket'],
      [
        [...good, 'Sec-WebSocket-Protocol: a, a'],
        'Sec-WebSocket-Protocol must be a comma-separated list of names, each once',
      ],
      [
        [...good, 'Sec-WebSocket-Protocol: a b'],
        'Sec-WebSocket-Protocol must be a comma-separated list of names, each once',
      ],
    ] as const) {
      const answer = await handshake(attach, [...headers]);
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer).toMatch(/content-type: application\/json/i);
      expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
        error: 'invalid_request',
        message,
      });
    }
    expect(await handshake(attach, [upgrade, key, 'Sec-WebSocket-Version: 99'])).toMatch(
      /sec-websocket-version: 13/i,
    );
    // Not an upgrade by Node's reading (no `upgrade` token in Connection): a plain request.
    const hinted = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(`http://${host}/healthz`, {
        headers: { connection: 'x-upgrade-hint', upgrade: 'websocket' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.end();
    });
    expect(hinted).toBe(200);
    // A plain HTTP route asked for a WebSocket: told so (it was switched, then closed at once).
    const plain = await handshake('/healthz', [...good]);
    expect(plain).toMatch(/^HTTP\/1\.1 400 /);
    expect(plain).toContain('"message":"/healthz is not a WebSocket: send it as a plain HTTP request"');
  });

  it('a WebSocket upgrade still reaches the terminal (here: one that cannot start)', async () => {
    const host = await serve();
    const ws = new WebSocket(`ws://${host}/v1/leases/${LEASE}/attach`, {
      headers: { authorization: `Bearer ${CREDENTIAL}` },
    });
    const closed = await new Promise<{ code: number; reason: string }>((resolve, reject) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
      ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    expect(closed).toEqual({ code: 1011, reason: 'the sandbox shell could not start' });
  });

  it('a WebSocket frame over the bound closes the socket (1009) without an error in the log', async () => {
    const lines: Array<{ level: number; msg?: string }> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    // A shell that takes its time to start: the frame arrives while the socket is open.
    const slow = { ...leases, attach: () => new Promise(() => {}) } as unknown as LeaseService;
    const host = await serve(logger, slow);
    const ws = new WebSocket(`ws://${host}/v1/leases/${LEASE}/attach`, {
      headers: { authorization: `Bearer ${CREDENTIAL}` },
    });
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(Buffer.alloc(70 * 1024));
    const code = await new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
    expect([1006, 1009]).toContain(code);
    await new Promise((r) => setTimeout(r, 100));
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    expect(lines.some((l) => l.msg === 'websocket closed for what its client sent')).toBe(true);
  });

  it('a JSON body with a __proto__ key is refused for that, not as invalid JSON', async () => {
    const host = await serve();
    for (const body of ['{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}']) {
      const res = await fetch(`http://${host}/v1/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({
        error: 'invalid_request',
        message: 'the body must not hold a "__proto__" or "constructor.prototype" key',
      });
    }
    const broken = await fetch(`http://${host}/v1/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"__proto__":',
    });
    expect(((await broken.json()) as { message: string }).message).not.toContain('__proto__');
  });

  it('a JSON body sent without its content type (curl -d) says which header to send', async () => {
    const host = await serve();
    const res = await fetch(`http://${host}/v1/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: '{"offer":"small","seconds":600,"image":"busybox"}',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: 'invalid_request',
      message: 'the body must be a JSON object sent with the header content-type: application/json',
    });
  });

  it('a JSON body sent as text/plain gets the same advice, not a type error about a string', async () => {
    const host = await serve();
    const res = await fetch(`http://${host}/v1/echo`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{"offer":"small","seconds":600,"image":"busybox"}',
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { message: string };
    expect(body.message).toContain('content-type: application/json');
    expect(body.message).not.toContain('received string');
  });

  it('any other content type, none, or a malformed one: 400 invalid_request in the API shape, same advice', async () => {
    const host = await serve();
    for (const contentType of ['application/xml', 'multipart/form-data; boundary=x', 'json', undefined]) {
      const res = await fetch(`http://${host}/v1/echo`, {
        method: 'POST',
        headers: contentType === undefined ? {} : { 'content-type': contentType },
        // A Blob without a type: fetch then sends no content type at all.
        body: new Blob(['{"offer":"small","seconds":600,"image":"busybox"}']),
      });
      expect(res.status, String(contentType)).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toEqual({
        error: 'invalid_request',
        message: 'the body must be a JSON object sent with the header content-type: application/json',
      });
    }
  });

  it('a JSON body that is an array is refused with the same advice', async () => {
    const host = await serve();
    const res = await fetch(`http://${host}/v1/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '[]',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain('must be a JSON object');
  });

  it('the operator ledger on a node without an operator token says how to turn it on', async () => {
    const host = await serve();
    const res = await fetch(`http://${host}/v1/operator/ledger`, {
      headers: { authorization: 'Bearer anything' },
    });
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('not_found');
    expect(body.message).toContain('ALACARTE_OPERATOR_TOKEN');
    const other = await fetch(`http://${host}/v1/nothing-here`);
    expect(await other.json()).toEqual({ error: 'not_found', message: 'no such route' });
  });

  it('another method at a route says which it takes (405), rather than that the route is absent', async () => {
    const host = await serve();
    const res = await fetch(`http://${host}/v1/echo`);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect(await res.json()).toEqual({
      error: 'invalid_request',
      message: 'GET is not served at /v1/echo; it takes POST',
    });
    // A route with a parameter in its path too (it was 404 "no such route", as for a path nobody serves).
    const attach = await fetch(`http://${host}/v1/leases/${LEASE}/attach`, { method: 'PATCH' });
    expect(attach.status).toBe(405);
    expect(attach.headers.get('allow')).toBe('GET, HEAD');
    expect(((await attach.json()) as { error: string }).error).toBe('invalid_request');
    const deeper = await fetch(`http://${host}/v1/leases/${LEASE}/attach/more`, { method: 'PATCH' });
    expect(deeper.status).toBe(404);
  });

  it('routePathMatches: a parameter is one non-empty segment, a final * the rest', () => {
    expect(routePathMatches('/v1/leases/:id', '/v1/leases/lse_1')).toBe(true);
    expect(routePathMatches('/v1/leases/:id', '/v1/leases/')).toBe(false);
    expect(routePathMatches('/v1/leases/:id', '/v1/leases/a/b')).toBe(false);
    expect(routePathMatches('/v1/leases/:id/files', '/v1/leases/x/files')).toBe(true);
    expect(routePathMatches('/assets/*', '/assets/a/b.js')).toBe(true);
    expect(routePathMatches('/assets/*', '/assets/')).toBe(true);
    expect(routePathMatches('/assets/*', '/other/a')).toBe(false);
    expect(routePathMatches('/v1/echo', '/v1/echo')).toBe(true);
    expect(routePathMatches('/v1/echo', '/v1/echoes')).toBe(false);
  });
});
