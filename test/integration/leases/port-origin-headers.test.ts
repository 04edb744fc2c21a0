import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../../helpers/lease-node.js';
import { crunSkipReason } from '../drivers/crun-target.js';

/**
 * A hostile server behind a port URL answers with headers that speak for the whole origin: on a
 * path URL that origin is the node's own (its web page keeps a renter's wallet in localStorage),
 * shared with every other lease's ports. Also keeps the Cookie header the request came with.
 */
const HOSTILE_SERVER = `
cr=$(printf '\\r')
: > /tmp/cookie
while IFS= read -r line; do
  line=\${line%$cr}
  [ -z "$line" ] && break
  case "$line" in [Cc]ookie:*) echo "$line" >> /tmp/cookie;; esac
done
body=hostile
printf 'HTTP/1.1 200 OK\\r\\nContent-Type: text/html\\r\\nContent-Length: %s\\r\\n' \${#body}
printf 'Set-Cookie: session=stolen; Path=/\\r\\n'
printf 'Clear-Site-Data: "*"\\r\\n'
printf 'Strict-Transport-Security: max-age=0; includeSubDomains\\r\\n'
printf 'Alt-Svc: h2="other.example:443"\\r\\n'
printf 'NEL: {"report_to":"x","max_age":86400,"success_fraction":1.0}\\r\\n'
printf 'Report-To: {"group":"x","max_age":86400,"endpoints":[{"url":"https://other.example/r"}]}\\r\\n'
printf 'Accept-CH: Sec-CH-UA-Model\\r\\n'
printf 'X-Kept: yes\\r\\nConnection: close\\r\\n\\r\\n%s' "$body"
`;

/** The same, as the answer to a WebSocket handshake (browsers store its cookies too). */
const HOSTILE_WS_SERVER = `
cr=$(printf '\\r')
key=
: > /tmp/ws-cookie
while IFS= read -r line; do
  line=\${line%$cr}
  [ -z "$line" ] && break
  case "$line" in [Cc]ookie:*) echo "$line" >> /tmp/ws-cookie;; [Ss]ec-[Ww]eb[Ss]ocket-[Kk]ey:*) key=\${line#*: };; esac
done
accept=$(printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' "$key" | sha1sum | cut -d' ' -f1 | xxd -r -p | base64)
printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n'
printf 'Set-Cookie: session=stolen; Path=/\\r\\nX-Kept: yes\\r\\n'
printf 'Sec-WebSocket-Accept: %s\\r\\n\\r\\n' "$accept"
printf '\\201\\002hi'
exec cat > /dev/null
`;

/** An answer whose header value holds a control character (\\001), as printf's format. */
const BROKEN_ANSWER =
  'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nX-Bad: a\\001b\\r\\nX-Kept: yes\\r\\nConnection: close\\r\\n\\r\\nok';

/** An answer with a status outside 100–599, with headers that would make a JSON body unreadable. */
const ODD_STATUS = `sleep 0.2
printf 'HTTP/1.1 999 Odd\\r\\nContent-Type: text/html\\r\\nContent-Encoding: gzip\\r\\nContent-Disposition: attachment\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok'`;

/** An answer whose head is larger than the proxy takes (a 70 kB header). */
const BIG_HEAD = `sleep 0.2
h=$(head -c 70000 /dev/zero | tr '\\0' a)
printf 'HTTP/1.1 200 OK\\r\\nX-Big: %s\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok' "$h"`;

describe.skipIf(crunSkipReason)("headers that speak for the node's origin, from a port URL", () => {
  let t: LeaseTestNode;
  let lease: { id: string; token: string; ports: Record<string, string> };

  beforeAll(async () => {
    t = await startLeaseNode();
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 20);
    const { token } = await tokenOf(wallet, t.mintUrl, proofs, 10);
    const res = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'small', seconds: 300, image: 'busybox', ports: [8080, 8081, 8082, 8083, 8084] },
      { 'x-cashu': token },
    );
    expect(res.status).toBe(201);
    lease = res.body as typeof lease;
    const auth = { authorization: `Bearer ${lease.token}` };
    const exec = (command: string[]) => postJson(`${t.url}/v1/leases/${lease.id}/exec`, { command }, auth);
    await exec(['sh', '-c', `cat > /h.sh <<'EOF'\n${HOSTILE_SERVER}\nEOF`]);
    const started = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      { command: ['nc', '-ll', '-p', '8080', '-e', 'sh', '/h.sh'], background: true },
      auth,
    );
    expect(started.status).toBe(202);
    await exec(['sh', '-c', `cat > /ws.sh <<'EOF'\n${HOSTILE_WS_SERVER}\nEOF`]);
    const ws = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      { command: ['nc', '-ll', '-p', '8081', '-e', 'sh', '/ws.sh'], background: true },
      auth,
    );
    expect(ws.status).toBe(202);
    // A header value with a control character (a malformed answer).
    const broken = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      {
        command: ['sh', '-c', `nc -ll -p 8082 -e sh -c "sleep 0.2; printf '${BROKEN_ANSWER}'"`],
        background: true,
      },
      auth,
    );
    expect(broken.status).toBe(202);
    // A status outside 100–599, and a head larger than the proxy takes.
    await exec([
      'sh',
      '-c',
      `cat > /odd.sh <<'EOF'\n${ODD_STATUS}\nEOF\ncat > /big.sh <<'EOF'\n${BIG_HEAD}\nEOF`,
    ]);
    for (const [port, script] of [
      [8083, '/odd.sh'],
      [8084, '/big.sh'],
    ] as const) {
      const odd = await postJson(
        `${t.url}/v1/leases/${lease.id}/exec`,
        { command: ['nc', '-ll', '-p', String(port), '-e', 'sh', script], background: true },
        auth,
      );
      expect(odd.status).toBe(202);
    }
    await sleep(300);
  }, 60_000);
  afterAll(async () => {
    await t?.close();
  });

  it('drops cookies and origin-wide state both ways on a path URL; the rest passes', async () => {
    const res = await fetch(lease.ports['8080'] ?? '', { headers: { cookie: 'wallet=secret' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hostile');
    expect(res.headers.get('x-kept')).toBe('yes');
    // Cookies of the node's host name would reach the node's API and every other lease's ports.
    expect(res.headers.get('set-cookie')).toBeNull();
    // Would wipe the node page's localStorage (the renter's wallet) in the visitor's browser.
    expect(res.headers.get('clear-site-data')).toBeNull();
    expect(res.headers.get('strict-transport-security')).toBeNull();
    expect(res.headers.get('alt-svc')).toBeNull();
    // Network Error Logging for the origin: every later URL of the node (other leases' port URLs
    // included) would be reported to the tenant's endpoint.
    expect(res.headers.get('nel')).toBeNull();
    expect(res.headers.get('report-to')).toBeNull();
    expect(res.headers.get('accept-ch')).toBeNull();
    const seen = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      { command: ['cat', '/tmp/cookie'] },
      { authorization: `Bearer ${lease.token}` },
    );
    expect(seen.body.stdout).toBe('');
  });

  it('does the same for a WebSocket handshake, whose frames still pass', async () => {
    const url = `${lease.ports['8081']?.replace(/^http/, 'ws')}chat`;
    const ws = new WebSocket(url, { headers: { cookie: 'wallet=secret' } });
    const headers = new Promise<Record<string, unknown>>((resolve) =>
      ws.once('upgrade', (res) => resolve(res.headers)),
    );
    const message = await new Promise<string>((resolve, reject) => {
      ws.once('message', (data: Buffer) => resolve(data.toString('utf8')));
      ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
    ws.terminate();
    expect(message).toBe('hi');
    expect((await headers)['x-kept']).toBe('yes');
    expect((await headers)['set-cookie']).toBeUndefined();
    const seen = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      { command: ['cat', '/tmp/ws-cookie'] },
      { authorization: `Bearer ${lease.token}` },
    );
    expect(seen.body.stdout).toBe('');
  });

  it('answers a server that answered what cannot be passed on with 502 saying so, not "nothing answers"', async () => {
    for (const [port, reason] of [
      ['8083', 'an invalid status code'],
      ['8084', 'Headers Overflow Error'],
    ] as const) {
      const res = await fetch(lease.ports[port] ?? '');
      expect(res.status).toBe(502);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.headers.get('content-encoding')).toBeNull();
      expect(res.headers.get('content-disposition')).toBeNull();
      expect(await res.json()).toEqual({
        error: 'bad_gateway',
        message: `the server on this port answered with something the node cannot pass on (${reason})`,
      });
    }
  });

  it("answers a port's malformed header with 502 bad_gateway, never a 500", async () => {
    const res = await fetch(lease.ports['8082'] ?? '');
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toBe('bad_gateway');
  });
});
