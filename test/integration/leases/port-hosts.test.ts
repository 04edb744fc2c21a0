import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../../helpers/lease-node.js';
import { crunSkipReason } from '../drivers/crun-target.js';

/** One HTTP request to the node with a Host header of our choice (DNS for the domain is not needed). */
function get(
  url: string,
  host: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host, ...headers } }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => {
        body += b.toString('utf8');
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(crunSkipReason)('port URLs on host names of their own (portsDomain)', () => {
  let t: LeaseTestNode;
  let lease: { id: string; token: string; ports: Record<string, string> };
  let host: string;

  beforeAll(async () => {
    t = await startLeaseNode({ portsDomain: 'ports.test' });
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
    const { token } = await tokenOf(wallet, t.mintUrl, proofs, 10);
    const res = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'small', seconds: 600, image: 'busybox', ports: [8080] },
      { 'x-cashu': token },
    );
    expect(res.status).toBe(201);
    lease = res.body as typeof lease;
    host = `8080-${lease.id.replace('lse_', 'lse-')}.ports.test:${new URL(t.url).port}`;
    const started = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      {
        command: [
          'sh',
          '-c',
          'mkdir -p /srv/sub && echo in sub > /srv/sub/index.html && httpd -f -p 8080 -h /srv & sleep 0.3',
        ],
      },
      { authorization: `Bearer ${lease.token}` },
    );
    expect(started.status).toBe(200);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('gives each port an origin of its own, reached with its path unchanged', async () => {
    expect(lease.ports).toEqual({ '8080': `http://${host}/` });
    const page = await get(`${t.url}/sub/index.html`, host);
    expect(page.status).toBe(200);
    expect(page.body).toBe('in sub\n');
    // An origin of its own needs no sandbox.
    expect(page.headers['content-security-policy']).toBeUndefined();
    const redirect = await get(`${t.url}/sub`, host);
    expect(redirect.headers.location).toBe('/sub/');
    // The node itself still answers on its own name.
    expect((await get(`${t.url}/healthz`, new URL(t.url).host)).status).toBe(200);
  });

  it("keeps a path port's redirects under its prefix, sandboxed", async () => {
    const redirect = await fetch(`${t.url}/v1/leases/${lease.id}/ports/8080/sub`, { redirect: 'manual' });
    expect(redirect.headers.get('location')).toBe(`/v1/leases/${lease.id}/ports/8080/sub/`);
    expect(redirect.headers.get('content-security-policy')).toMatch(/^sandbox /);
  });

  it('answers 404 for a host naming an undeclared port or an unknown lease, HTTP and upgrade alike', async () => {
    const other = host.replace(/^8080-/, '9999-');
    expect((await get(`${t.url}/`, other)).status).toBe(404);
    const upgrade = { connection: 'upgrade', upgrade: 'websocket' };
    expect((await get(`${t.url}/`, other, upgrade)).status).toBe(404);
    const unknown = `8080-lse-${'0'.repeat(26)}.ports.test`;
    expect((await get(`${t.url}/`, unknown)).status).toBe(404);
  });
});
