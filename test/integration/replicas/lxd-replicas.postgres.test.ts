import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { portPath } from '../../../src/http/port-routes.js';
import { expectBalanced, ledgerOf, postJson, sumOf, tokens } from '../../helpers/lease-node.js';
import { type NodeProcess, QUARTER_OFFER, startReplicas } from '../../helpers/node-process.js';
import { testDatabase, testPostgresUnavailable } from '../../helpers/postgres.js';
import { socketKeyboard, waitForShell } from '../../helpers/terminal.js';
import { type LxdDaemon, lxdSkipReason, startLxd } from '../drivers/lxd-target.js';

/**
 * Three `alacarte serve` replicas on one PostgreSQL and one LXD daemon (the shared compute target
 * `lxd:<owner>`, as an LXD cluster would be): a lease bought through one is served by every one.
 * Created via A, exec'd via B, attached via C (WebSocket), extended via B, stopped via C; the
 * refund is the unused time of the extended lease and every replica reads the same balanced books.
 * A lease's port URL answers through every replica as soon as the lease runs, each relaying it
 * itself (so also once the replica that created it is gone).
 */
const OPERATOR = 'operator-token-for-lxd-replicas-01234';
const PRICE = 60; // 60 sat/h × 1 h
const skip = testPostgresUnavailable() ?? lxdSkipReason;
const replicas: NodeProcess[] = [];
let daemon: LxdDaemon | undefined;
let runtimeDir = '';

beforeAll(async () => {
  if (skip !== undefined) return;
  const storeUrl = await testDatabase();
  daemon = await startLxd();
  // Every replica writes deadlines where every instance reads them: one path for all.
  runtimeDir = mkdtempSync(join(tmpdir(), 'alacarte-lxd-shared-'));
  chmodSync(runtimeDir, 0o711);
  await startReplicas({
    into: replicas,
    prefix: 'lxd-replica',
    count: 3,
    storeUrl,
    config: {
      driver: { kind: 'lxd', socket: daemon.socketPath, runtimeDir },
      offers: [QUARTER_OFFER],
    },
    env: { ALACARTE_OPERATOR_TOKEN: OPERATOR },
  });
}, 240_000);

afterAll(async () => {
  for (const replica of replicas) await replica.kill();
  await daemon?.stop();
  for (const replica of replicas) await replica.cleanup();
  if (runtimeDir) rmSync(runtimeDir, { recursive: true, force: true });
});

/** Replica i by its own address (the banner shows the public URL they share). */
const url = (i: number) => replicas[i]!.localUrl;

function attach(i: number, lease: { id: string; token: string }): Promise<WebSocket> {
  const ws = new WebSocket(`${url(i).replace('http', 'ws')}/v1/leases/${lease.id}/attach`, [
    `bearer.${lease.token}`,
  ]);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

describe.skipIf(skip !== undefined)(`3 replicas on one PostgreSQL and one LXD ${skip ?? ''}`, () => {
  it('serves a lease bought through one replica through every other', async () => {
    const { wallet, tokens: pool } = await tokens(`${url(0)}/mint`, 2, PRICE);
    const created = await postJson(
      `${url(0)}/v1/leases`,
      { offer: 'quarter', seconds: 3600, image: 'busybox' },
      { 'x-cashu': pool[0]!.token },
    );
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const lease = created.body as { id: string; token: string };

    const ran = await postJson(
      `${url(1)}/v1/leases/${lease.id}/exec`,
      { command: ['sh', '-c', 'echo via-b > /tmp/mark; cat /tmp/mark'] },
      { authorization: `Bearer ${lease.token}` },
    );
    expect(ran.status, JSON.stringify(ran.body)).toBe(200);
    expect(ran.body.stdout).toBe('via-b\n');

    // The terminal through C sees what B's command left in the same instance.
    const ws = await attach(2, lease);
    let shown = '';
    ws.on('message', (data: Buffer) => {
      shown += data.toString('utf8');
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const showing = async (text: string) => {
      for (let i = 0; i < 150 && !shown.includes(text); i++) await new Promise((r) => setTimeout(r, 100));
      return shown;
    };
    // Typed once the shell reads (keys sent before its line editing may be dropped).
    await waitForShell(socketKeyboard(ws), () => shown);
    expect(shown).toContain('BusyBox');
    ws.send(Buffer.from('cat /tmp/mark; echo "sum=$((40+2))"\n'), { binary: true });
    expect(await showing('sum=42')).toContain('via-b');
    ws.send(Buffer.from('exit\n'), { binary: true });
    expect(await closed).toBe(1000);

    const extended = await postJson(
      `${url(1)}/v1/leases/${lease.id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': pool[1]!.token },
    );
    expect(extended.status, JSON.stringify(extended.body)).toBe(200);
    // B wrote the new deadline where the instance reads it (the shared runtime directory).
    const inside = await postJson(
      `${url(2)}/v1/leases/${lease.id}/exec`,
      { command: ['cat', '/run/alacarte/lease.json'] },
      { authorization: `Bearer ${lease.token}` },
    );
    expect(Date.parse((JSON.parse(String(inside.body.stdout)) as { expires_at: string }).expires_at)).toBe(
      Date.parse(extended.body.expires_at as string),
    );

    const stopped = await fetch(`${url(2)}/v1/leases/${lease.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${lease.token}` },
    });
    const body = (await stopped.json()) as { state: string; refund?: string; refunded?: number };
    expect(stopped.status, JSON.stringify(body)).toBe(200);
    expect(body.state).toBe('stopped');
    // Nearly two paid hours unused: all of it back but the few seconds that ran.
    const back = sumOf(await wallet.receive(body.refund!));
    expect(back).toBeGreaterThan(2 * PRICE - 5);
    expect(back).toBeLessThan(2 * PRICE);

    // Another lease, bought through A; B restarts (kill -9): its reconcile of the shared target
    // leaves A's healthy lease running.
    const [more] = (await tokens(`${url(0)}/mint`, 1, PRICE)).tokens;
    const second = await postJson(
      `${url(0)}/v1/leases`,
      { offer: 'quarter', seconds: 3600, image: 'busybox' },
      { 'x-cashu': more!.token },
    );
    expect(second.status, JSON.stringify(second.body)).toBe(201);
    const kept = second.body as { id: string; token: string };
    await replicas[1]!.kill();
    await replicas[1]!.start();
    const still = await postJson(
      `${url(1)}/v1/leases/${kept.id}/exec`,
      { command: ['echo', 'still'] },
      { authorization: `Bearer ${kept.token}` },
    );
    expect(still.body.stdout).toBe('still\n');

    const after = await postJson(
      `${url(0)}/v1/leases/${lease.id}/exec`,
      { command: ['true'] },
      { authorization: `Bearer ${lease.token}` },
    );
    expect(after.status).toBe(409);
    for (const i of [0, 1, 2]) {
      const books = await ledgerOf(url(i), OPERATOR);
      expect(expectBalanced(books)).toEqual([]);
      expect(books.received).toBe(3 * PRICE);
      expect(books.refunded).toBe(back);
      expect(books.leases.running).toBe(1);
    }
  });

  it('serves the port of a lease created through one replica through the others at once, by their own relays', async () => {
    const [pay] = (await tokens(`${url(0)}/mint`, 1, PRICE)).tokens;
    const created = await postJson(
      `${url(0)}/v1/leases`,
      {
        offer: 'quarter',
        seconds: 3600,
        image: 'busybox',
        ports: [8080],
        command: ['httpd', '-f', '-p', '8080', '-h', '/etc'],
      },
      { 'x-cashu': pay!.token },
    );
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = (created.body as { id: string }).id;
    const page = (i: number) => fetch(`${url(i)}${portPath(id, 8080)}passwd`);
    // The server in the sandbox is up once the replica that created the lease answers through it.
    let first = await page(0);
    for (let i = 0; i < 100 && first.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      first = await page(0);
    }
    expect(first.status).toBe(200);

    // Through C at once: no wait for C to list the lease (its sweep runs every 30 s).
    const viaC = await page(2);
    expect(viaC.status).toBe(200);
    expect(await viaC.text()).toMatch(/^root:/);
    // A gone: what C and B answer now comes through relays of their own, not A's.
    await replicas[0]!.kill();
    for (const i of [2, 1]) {
      const res = await page(i);
      expect(res.status, `through replica ${i}`).toBe(200);
      expect(await res.text()).toMatch(/^root:/);
    }
  });
});
