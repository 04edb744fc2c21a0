import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  freePort,
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../../helpers/lease-node.js';
import { crunSkipReason } from '../drivers/crun-target.js';

/**
 * An address of this machine other than loopback, as another machine would reach the node: the
 * driver's own relays listen on 127.0.0.1 only, so what answers there came through the node's
 * public listener. Loopback when the machine has nothing else.
 */
const hostAddress =
  Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address ?? '127.0.0.1';

/**
 * A WebSocket server in busybox sh, one connection per `nc -ll -e` run: answers the handshake
 * (Sec-WebSocket-Accept from sha1sum, xxd and base64), sends one text frame, then keeps what the
 * client sends in /tmp/ws-in.
 */
const WS_SERVER = `
key=
cr=$(printf '\\r')
while IFS= read -r line; do
  line=\${line%$cr}
  [ -z "$line" ] && break
  case "$line" in [Ss]ec-[Ww]eb[Ss]ocket-[Kk]ey:*) key=\${line#*: };; esac
done
accept=$(printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' "$key" | sha1sum | cut -d' ' -f1 | xxd -r -p | base64)
printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: %s\\r\\n\\r\\n' "$accept"
printf '\\201\\026hello from the sandbox'
exec cat > /tmp/ws-in
`;

describe.skipIf(crunSkipReason)("a lease's ports through the node's own listener", () => {
  let t: LeaseTestNode;
  let base: string;
  let lease: { id: string; token: string; ports: Record<string, string> };
  let nextToken: () => Promise<string>;

  const auth = () => ({ authorization: `Bearer ${lease.token}` });
  const exec = (body: Record<string, unknown>) =>
    postJson(`${base}/v1/leases/${lease.id}/exec`, body, auth());

  beforeAll(async () => {
    const port = await freePort();
    base = `http://${hostAddress}:${port}`;
    t = await startLeaseNode({ host: '0.0.0.0', port, publicUrl: base });
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
    let left = proofs;
    nextToken = async () => {
      const { token, keep } = await tokenOf(wallet, t.mintUrl, left, 10);
      left = keep;
      return token;
    };
    const res = await postJson(
      `${base}/v1/leases`,
      { offer: 'small', seconds: 600, image: 'busybox', ports: [8080, 8081, 8082] },
      { 'x-cashu': await nextToken() },
    );
    expect(res.status).toBe(201);
    lease = res.body as typeof lease;
  });
  /** Set by the last case, which closes the node itself with the lease's sandbox running. */
  let nodeClosed = false;
  afterAll(async () => {
    if (!nodeClosed) await t?.close();
    else {
      for (const s of await t.driver.list()) await t.driver.stop(s);
      await t.driver.close();
    }
  });

  it("answers with URLs under the node's public URL, one per declared port", () => {
    expect(lease.ports).toEqual({
      '8080': `${base}/v1/leases/${lease.id}/ports/8080/`,
      '8081': `${base}/v1/leases/${lease.id}/ports/8081/`,
      '8082': `${base}/v1/leases/${lease.id}/ports/8082/`,
    });
  });

  it('a server an exec started in the background still answers through its port URL a minute after that exec returned', async () => {
    // httpd -v logs every request to the exec's stderr, long after the exec returned.
    const started = await exec({
      command: [
        'sh',
        '-c',
        'mkdir -p /www && echo "hello from the lease" > /www/index.html && httpd -f -v -p 8080 -h /www & echo started',
      ],
    });
    expect(started.status).toBe(200);
    expect(started.body.stdout).toBe('started\n');
    const first = await fetch(lease.ports['8080'] ?? '');
    expect(first.status).toBe(200);
    await sleep(60_000);
    const res = await fetch(`${lease.ports['8080']}index.html?x=1`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hello from the lease\n');
    // No credential needed, and the prefix-less path redirects to the directory, for relative links.
    const bare = await fetch(`${base}/v1/leases/${lease.id}/ports/8080`, { redirect: 'manual' });
    expect(bare.status).toBe(308);
    expect(bare.headers.get('location')).toBe(`/v1/leases/${lease.id}/ports/8080/`);
  }, 90_000);

  it('background: true answers 202 at once with a pid, and the command keeps running', async () => {
    const r = await exec({ command: ['httpd', '-f', '-p', '8082', '-h', '/etc'], background: true });
    expect(r.status).toBe(202);
    expect(r.body).toEqual({ started: true, pid: expect.any(Number) });
    await sleep(500);
    const ps = await exec({ command: ['sh', '-c', `cat /proc/${r.body.pid}/cmdline | tr '\\0' ' '`] });
    expect(ps.body.stdout).toBe('httpd -f -p 8082 -h /etc ');
    const page = await fetch(`${lease.ports['8082']}passwd`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/^root:/);
    // Its pages run in an origin of their own, away from the node page's wallet (localStorage).
    expect(page.headers.get('content-security-policy')).toMatch(/^sandbox allow-scripts/);
    expect(page.headers.get('content-security-policy')).not.toContain('allow-same-origin');
    const missing = await exec({ command: ['no-such-server'], background: true });
    expect(missing.status).toBe(200);
    expect(missing.body).toMatchObject({ started: false, exit_code: 127 });
    const withInput = await exec({ command: ['cat'], background: true, stdin: 'x' });
    expect(withInput.status).toBe(400);
  });

  it('passes a request that asks for 100 Continue (curl does past 1 MiB): the node answers that itself', async () => {
    // The server from the case above, on 8082. The header went on to the proxy, which refused it:
    // every such request was 502 "nothing answers".
    const url = new URL(`${lease.ports['8082']}passwd`);
    const answer = await new Promise<{ status: number; body: string; continued: boolean }>(
      (resolve, reject) => {
        let continued = false;
        const req = httpRequest(url, {
          method: 'POST',
          headers: { expect: '100-continue', 'content-length': '5' },
        });
        req.on('continue', () => {
          continued = true;
          req.end('hello');
        });
        req.on('response', (res) => {
          let body = '';
          res.on('data', (b: Buffer) => {
            body += b.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, continued }));
        });
        req.on('error', reject);
      },
    );
    expect(answer.continued).toBe(true);
    // busybox httpd answers a POST to a file as it does (not the node's 502).
    expect(answer.status).not.toBe(502);
    expect(answer.body).not.toContain('bad_gateway');
  });

  it('says so when the server on a port answers with something that is not HTTP', async () => {
    // Header lines ending in a bare LF (a hand-written CGI): it answered, nothing is missing.
    await exec({
      command: [
        'nc',
        '-l',
        '-p',
        '8081',
        '-e',
        'sh',
        '-c',
        "printf 'HTTP/1.1 200 OK\\nContent-Length: 2\\n\\nhi'",
      ],
      background: true,
    });
    await sleep(300);
    const res = await fetch(lease.ports['8081'] ?? '');
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({
      error: 'bad_gateway',
      message: expect.stringMatching(
        /^the server on this port answered with something that is not valid HTTP\/1\.1 \(.+\)$/,
      ),
    });
    await sleep(300);
  });

  it('carries a WebSocket both ways', async () => {
    await exec({ command: ['sh', '-c', `cat > /ws.sh <<'EOF'\n${WS_SERVER}\nEOF`] });
    await exec({ command: ['nc', '-ll', '-p', '8081', '-e', 'sh', '/ws.sh'], background: true });
    await sleep(300);
    const url = `${lease.ports['8081']?.replace(/^http/, 'ws')}chat?room=1`;
    const ws = new WebSocket(url);
    const message = await new Promise<string>((resolve, reject) => {
      ws.once('message', (data: Buffer) => resolve(data.toString('utf8')));
      ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
    expect(message).toBe('hello from the sandbox');
    ws.send('ping');
    await sleep(500);
    // A masked client text frame of 4 bytes: 0x81, 0x84, the mask, the payload.
    const seen = await exec({ command: ['sh', '-c', 'od -An -tx1 -N2 /tmp/ws-in'] });
    expect(String(seen.body.stdout).trim()).toBe('81 84');
    ws.terminate();
  });

  it('refuses hostile port paths with a clear 4xx', async () => {
    const get = (path: string) => fetch(`${base}/v1/leases/${path}`);
    for (const bad of ['abc', '0', '65536', '-1', '8080x']) {
      const r = await get(`${lease.id}/ports/${bad}/`);
      expect(r.status, bad).toBe(400);
      expect(((await r.json()) as { error: string }).error).toBe('invalid_request');
    }
    const undeclared = await get(`${lease.id}/ports/9999/`);
    expect(undeclared.status).toBe(404);
    expect(((await undeclared.json()) as { error: string }).error).toBe('not_found');
    // A path that does not decode is the router's 400.
    expect((await get('%E0%A4%A/ports/8080/')).status).toBe(400);
    for (const unknown of ['lse_nosuchlease', '..', '%2e%2e', 'x'.repeat(100)]) {
      const r = await get(`${unknown}/ports/8080/`);
      expect(r.status, unknown).toBe(404);
    }
    // Nothing is listening yet on a declared port: 502 with the API's error body.
    const other = await postJson(
      `${base}/v1/leases`,
      { offer: 'small', seconds: 60, image: 'busybox', ports: [7000] },
      { 'x-cashu': await nextToken() },
    );
    expect(other.status).toBe(201);
    const otherUrl = (other.body.ports as Record<string, string>)['7000'] ?? '';
    const idle = await fetch(otherUrl);
    expect(idle.status).toBe(502);
    expect(((await idle.json()) as { error: string }).error).toBe('bad_gateway');
    // An ended lease: 409, for HTTP and for a WebSocket alike.
    await postJson(
      `${base}/v1/leases/${other.body.id}`,
      undefined,
      { authorization: `Bearer ${other.body.token}` },
      'DELETE',
    );
    const ended = await fetch(otherUrl);
    expect(ended.status).toBe(409);
    expect(((await ended.json()) as { error: string }).error).toBe('lease_not_running');
    expect(await upgradeStatus(`${otherUrl.replace(/^http/, 'ws')}`)).toBe(409);
    expect(await upgradeStatus(`${base.replace(/^http/, 'ws')}/v1/leases/${lease.id}/ports/9999/`)).toBe(404);
    expect(await upgradeStatus(`${base.replace(/^http/, 'ws')}/v1/leases/${lease.id}/ports/x/`)).toBe(400);
    expect(await upgradeStatus(`${base.replace(/^http/, 'ws')}/v1/leases/%E0%A4%A/ports/8080/`)).toBe(404);
  });

  it('WebSocket clients that went away free their connections of the lease within seconds', async () => {
    // The server (from 'carries a WebSocket both ways') keeps each connection until the client's
    // end reaches it, which a relay cannot pass on: clients that came and went used to hold the
    // lease's 32 connections for ever, every port answering 502 after them.
    const url = `${lease.ports['8081']?.replace(/^http/, 'ws')}again`;
    const round = async () => {
      const opened = await Promise.all(Array.from({ length: 20 }, () => openWebSocket(url)));
      for (const ws of opened) if (typeof ws !== 'number') ws.terminate();
      return opened.every((ws) => typeof ws !== 'number');
    };
    expect(await round()).toBe(true);
    // 20 more than the 32 the lease holds at once, once the first 20 have gone.
    let second = false;
    for (let i = 0; i < 30 && !second; i++) {
      await sleep(1000);
      second = await round();
    }
    expect(second).toBe(true);
  });

  it("keeps the driver's relay itself off the public address", async () => {
    const relays = (await t.driver.list())
      .flatMap((s) => Object.values(s.ports))
      .map((u) => Number(new URL(u).port));
    expect(relays.length).toBeGreaterThan(0);
    if (hostAddress === '127.0.0.1') return;
    for (const port of relays) {
      const refused = await new Promise<boolean>((resolve) => {
        const s = connect({ host: hostAddress, port });
        s.once('connect', () => {
          s.destroy();
          resolve(false);
        });
        s.once('error', () => resolve(true));
      });
      expect(refused).toBe(true);
    }
  });

  it("the node's close cuts a port's WebSocket still open, with the lease's sandbox left running", async () => {
    let ws: WebSocket | number = 0;
    for (let i = 0; i < 30 && typeof ws === 'number'; i++) {
      if (i > 0) await sleep(1000);
      ws = await openWebSocket(`${lease.ports['8081']?.replace(/^http/, 'ws')}open`);
    }
    if (typeof ws === 'number') throw new Error(`no WebSocket: HTTP ${ws}`);
    const open = ws;
    const gone = new Promise<void>((resolve) => open.once('close', () => resolve()));
    nodeClosed = true;
    const closed = await Promise.race([
      t.node.close().then(() => 'closed'),
      sleep(20_000).then(() => 'hung'),
    ]);
    expect(closed).toBe('closed');
    await gone;
  });
});

/** A WebSocket to a port of the lease once its server's first message came, or the refusal's HTTP status. */
function openWebSocket(url: string): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('message', () => resolve(ws));
    ws.once('unexpected-response', (_q, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

/** The HTTP status a WebSocket upgrade is refused with (0 if it was accepted). */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('unexpected-response', (_q, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => {
      ws.terminate();
      resolve(0);
    });
    ws.once('error', reject);
  });
}
