import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LeaseTestNode, postJson, startLeaseNode, tokens } from '../../helpers/lease-node.js';

/**
 * Issue 9, section 3 (exec output, found by the outside re-test): an exec's answer — up to 1 MiB of
 * stdout and 1 MiB of stderr, six times that as JSON when the output is NUL bytes — stays in the
 * node's memory until its client reads it. A client that sends execs and never reads their answers
 * grew the node by ~26 MiB per request (40 requests: 109 -> 1166 MiB), without bound. Now an
 * exec's slot (8 per lease) is held until its answer has been handed over, so such a client holds
 * at most 8 answers and is told `429 rate_limited` beyond that.
 */
let t: LeaseTestNode;
let lease: { id: string; token: string };
const open: Socket[] = [];

beforeAll(async () => {
  t = await startLeaseNode();
  const { tokens: pool } = await tokens(t.mintUrl, 1, 16);
  const res = await postJson(
    `${t.url}/v1/leases`,
    { offer: 'small', seconds: 900, image: 'busybox' },
    { 'x-cashu': pool[0]?.token ?? '' },
  );
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  lease = res.body as { id: string; token: string };
}, 120_000);
afterAll(async () => {
  for (const s of open) s.destroy();
  await t?.close();
});

const exec = (command: string[]) =>
  postJson(
    `${t.url}/v1/leases/${lease.id}/exec`,
    { command, timeout_seconds: 30 },
    {
      authorization: `Bearer ${lease.token}`,
    },
  );

/** Sends an exec on a raw connection and never reads its answer. */
function unreadExec(command: string[]): Socket {
  const { hostname, port } = new URL(t.url);
  const body = JSON.stringify({ command, timeout_seconds: 30 });
  const s = connect(Number(port), hostname);
  s.on('error', () => {});
  s.write(
    `POST /v1/leases/${lease.id}/exec HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${lease.token}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  s.pause();
  open.push(s);
  return s;
}

describe('exec answers a client does not read', () => {
  it('hold their slots until read: no more than 8 per lease pile up in the node', async () => {
    const floods: Socket[] = [];
    for (let i = 0; i < 7; i++) {
      floods.push(
        unreadExec([
          'sh',
          '-c',
          `head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2; touch /tmp/done-${i}`,
        ]),
      );
    }
    // Every flooding command has finished (seen through the one slot left) ...
    for (let i = 0; ; i++) {
      const res = await exec(['sh', '-c', 'ls /tmp | grep -c done-']);
      if (res.status === 200 && String(res.body.stdout).trim() === '7') break;
      expect(i, JSON.stringify(res.body)).toBeLessThan(120);
      await sleep(250);
    }
    await sleep(500);
    // ... yet their answers are unread: one slot of eight is left, not eight.
    const both = await Promise.all([exec(['sleep', '2']), exec(['sleep', '2'])]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 429]);
    expect(both.find((r) => r.status === 429)?.body.error).toBe('rate_limited');

    // A client that goes away gives its slots back.
    for (const s of floods) s.destroy();
    for (let i = 0; ; i++) {
      const again = await Promise.all([exec(['sleep', '1']), exec(['sleep', '1']), exec(['true'])]);
      if (again.every((r) => r.status === 200)) break;
      expect(i).toBeLessThan(40);
      await sleep(250);
    }
  }, 120_000);

  it('a client that goes before its answer (Ctrl-C) ends its command and gives its slot back', async () => {
    // Eight long commands, each client gone half a second after sending: they used to run on to
    // their timeout, holding all of the lease's slots (every exec 429) for five minutes.
    for (let i = 0; i < 8; i++) {
      const s = connect(Number(new URL(t.url).port), new URL(t.url).hostname);
      s.on('error', () => {});
      const body = JSON.stringify({ command: ['sleep', `${300 + i}`], timeout_seconds: 600 });
      s.write(
        `POST /v1/leases/${lease.id}/exec HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${lease.token}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      await sleep(500);
      s.destroy();
    }
    let ps = await exec(['sh', '-c', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "']);
    for (let i = 0; i < 20 && (ps.status !== 200 || /sleep 30\d/.test(String(ps.body.stdout))); i++) {
      await sleep(250);
      ps = await exec(['sh', '-c', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "']);
    }
    expect(ps.status).toBe(200);
    expect(String(ps.body.stdout)).not.toMatch(/sleep 30\d/);
    const all = await Promise.all(Array.from({ length: 8 }, () => exec(['true'])));
    expect(all.map((r) => r.status)).toEqual(Array(8).fill(200));
  }, 60_000);
});
