import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CONNECTIONS_PER_LEASE } from '../../../src/drivers/crun/port-proxy.js';
import { openSocket, type WatchedSocket } from '../../helpers/sockets.js';
import { newLeaseId, TEST_LIMITS, waitFor } from './compute-driver.contract.js';
import { type CrunTarget, crunSkipReason, makeCrunTarget } from './crun-target.js';

/**
 * Issue 9, section 3: each connection to a lease's port costs the host a relay process outside
 * the tenant's cgroup, and anyone who reaches the port can open them: a lease holds a bounded
 * number at once, over all its ports.
 */
describe.skipIf(crunSkipReason)('port proxy bounds', () => {
  let t: CrunTarget;
  const leaseId = newLeaseId();
  let urls: Record<number, string>;

  beforeAll(async () => {
    t = await makeCrunTarget();
    const handle = await t.driver.start(
      {
        leaseId,
        image: 'busybox',
        ports: [8080, 8081, 8082],
        command: ['sh', '-c', 'httpd -p 8081 -h /etc; exec httpd -f -p 8080 -h /etc'],
      },
      { ...TEST_LIMITS, pids: 256 },
      new Date(Date.now() + 300_000),
    );
    urls = handle.ports;
    for (const port of [8080, 8081]) {
      const up = await waitFor(
        async () => (await fetch(`${urls[port]}/passwd`).catch(() => undefined))?.status === 200,
        15_000,
      );
      expect(up).toBe(true);
    }
  });
  afterAll(async () => {
    await t?.driver.stop({ leaseId });
    await t?.dispose();
  });

  function open(url: string): Promise<WatchedSocket> {
    const { hostname, port } = new URL(url);
    return openSocket(Number(port), hostname);
  }

  it(`relays at most ${MAX_CONNECTIONS_PER_LEASE} connections at once over all of a lease's ports`, async () => {
    const extra = 8;
    const conns = [];
    for (let i = 0; i < MAX_CONNECTIONS_PER_LEASE + extra; i++) {
      conns.push(await open(urls[i % 2 === 0 ? 8080 : 8081] ?? ''));
    }
    await sleep(1000);
    const refused = conns.filter((c) => c.closed());
    expect(refused.length).toBe(extra);
    // The ones taken in are relayed: a request on one of them is answered.
    const kept = conns.find((c) => !c.closed());
    const answer = new Promise<string>((resolve) => {
      let text = '';
      kept?.socket.on('data', (b: Buffer) => {
        text += b.toString();
        if (text.includes('root:')) resolve(text);
      });
    });
    kept?.socket.write('GET /passwd HTTP/1.0\r\n\r\n');
    expect(await answer).toContain('200 OK');

    // Slots come back as connections end: each kept one asks for a page, which the server
    // answers and closes.
    const kepts = conns.filter((c) => !c.closed() && c !== kept);
    for (const c of kepts) c.socket.resume(); // read the answer, so the close that follows is seen
    for (const c of kepts) c.socket.write('GET /passwd HTTP/1.0\r\n\r\n');
    expect(await waitFor(() => kepts.every((c) => c.closed()), 30_000)).toBe(true);
    expect(await waitFor(() => kept?.closed() ?? false, 10_000), 'the answered connection was closed').toBe(
      true,
    );
    // The node sees each close a moment after the client: until then a new one may be refused.
    const allTaken = async () => {
      const again = await Promise.all(
        Array.from({ length: MAX_CONNECTIONS_PER_LEASE }, (_, i) =>
          open(urls[i % 2 === 0 ? 8080 : 8081] ?? ''),
        ),
      );
      await sleep(500);
      const refusedNow = again.filter((c) => c.closed()).length;
      // Each asks for a page and half-closes: answered, then closed by the server, slot given back.
      for (const c of again) {
        c.socket.resume();
        c.socket.end('GET /passwd HTTP/1.0\r\n\r\n');
      }
      if (refusedNow > 0) await sleep(1000);
      return refusedNow === 0;
    };
    expect(await waitFor(allTaken, 15_000)).toBe(true);
  });

  it('a port where nothing listens takes each slot back at once, also from a client that stays', async () => {
    // The relay exits at once; the client's request meets its closed input. Such connections
    // kept their slot for good (the client's end was never read), until every port answered 502.
    for (let round = 0; round < 3; round++) {
      const conns = await Promise.all(
        Array.from({ length: MAX_CONNECTIONS_PER_LEASE }, () => open(urls[8082] ?? '')),
      );
      for (const c of conns) c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await waitFor(() => conns.every((c) => c.closed()), 10_000)).toBe(true);
    }
    // Every slot is back: as many connections at once to a served port are all taken in.
    const served = await Promise.all(
      Array.from({ length: MAX_CONNECTIONS_PER_LEASE }, () => open(urls[8080] ?? '')),
    );
    await sleep(500);
    expect(served.filter((c) => c.closed())).toHaveLength(0);
    for (const c of served) c.socket.destroy();
  });
});
