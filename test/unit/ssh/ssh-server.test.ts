import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxProcess } from '../../../src/drivers/compute-driver.js';
import { silentLogger } from '../../../src/log.js';
import { loadOrCreateHostKey } from '../../../src/ssh/host-key.js';
import { SshServer, sourceOf } from '../../../src/ssh/ssh-server.js';

const { Client } = ssh2;

const dir = mkdtempSync(join(tmpdir(), 'alacarte-sshd-'));
let server: SshServer;
let port: number;
/** The leases that run, as the store would say. */
const live = new Set<string>();
const LEASE = 'lse_0000000000000000000000000a';

const nothing = () => Promise.reject(new Error('not in this test')) as Promise<SandboxProcess>;

beforeAll(async () => {
  server = new SshServer({
    hostKey: loadOrCreateHostKey(join(dir, 'key')),
    leases: {
      lease: async () => undefined,
      passwordMatches: async (user, password) => live.has(user) && password === 'right',
      running: async (ids) => new Set(ids.filter((id) => live.has(id))),
    },
    driver: {
      spawn: nothing,
      sftp: nothing,
      attach: () => Promise.reject(new Error('no')),
      connect: () => Promise.reject(new Error('no')),
    },
    logger: silentLogger(),
    limits: {
      loginGraceMs: 600,
      unauthenticated: 3,
      unauthenticatedPerAddress: 2,
      perLease: 2,
      leaseCheckMs: 100,
    },
  });
  port = await server.listen('127.0.0.1', 0);
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw TCP connection that says nothing; resolves with the ms until the server closed it. */
function silent(from = '127.0.0.1'): { socket: Socket; closed: Promise<number> } {
  const started = Date.now();
  const socket = connect({ port, host: '127.0.0.1', localAddress: from });
  socket.on('error', () => undefined);
  socket.resume();
  return {
    socket,
    closed: new Promise((resolve) => socket.once('close', () => resolve(Date.now() - started))),
  };
}

describe('SSH server bounds before login', () => {
  it('cuts a connection that never logs in (not even says hello) after the grace time', async () => {
    const { closed } = silent();
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(500);
    expect(ms).toBeLessThan(5000);
  });

  it('refuses connections beyond the number allowed to be logging in at once', async () => {
    const held = ['127.0.0.1', '127.0.0.2', '127.0.0.3'].map((from) => silent(from));
    await new Promise((r) => setTimeout(r, 100));
    const c = silent('127.0.0.4');
    expect(await c.closed).toBeLessThan(300);
    await Promise.all(held.map((h) => h.closed));
  });

  it('keeps one address from holding every login slot: another address still logs in', async () => {
    live.add(LEASE);
    const held = [silent(), silent()];
    await new Promise((r) => setTimeout(r, 100));
    const third = silent();
    expect(await third.closed).toBeLessThan(300);
    const other = login(LEASE, 'right', '127.0.0.2');
    expect(await other.outcome).toBe('ready');
    other.client.end();
    await Promise.all([other.closed, ...held.map((h) => h.closed)]);
  });
});

/** Logs in with ssh2's client; resolves 'ready' or the error, and with when it closed. */
function login(user: string, password: string, from = '127.0.0.1') {
  const client = new Client();
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  const outcome = new Promise<string>((resolve) => {
    client.once('ready', () => resolve('ready'));
    client.once('error', (err) => resolve(String(err.message)));
  });
  const sock = connect({ port, host: '127.0.0.1', localAddress: from });
  client.connect({ sock, username: user, password, readyTimeout: 5000 });
  return { client, outcome, closed };
}

describe('SSH server bounds after login', () => {
  it('refuses a wrong password and an ended lease alike', async () => {
    live.add(LEASE);
    for (const [user, password] of [
      [LEASE, 'wrong'],
      ['lse_0000000000000000000000000b', 'right'],
    ] as const) {
      const attempt = login(user, password);
      expect(await attempt.outcome).toMatch(/authentication methods failed/);
      attempt.client.end();
      await attempt.closed;
    }
  });

  it('lets a lease hold at most perLease connections', async () => {
    live.add(LEASE);
    const a = login(LEASE, 'right');
    const b = login(LEASE, 'right');
    expect(await a.outcome).toBe('ready');
    expect(await b.outcome).toBe('ready');
    const c = login(LEASE, 'right');
    expect(await c.outcome).toMatch(/authentication methods failed/);
    c.client.end();
    a.client.end();
    b.client.end();
    await Promise.all([a.closed, b.closed]);
  });

  it('closes a connection (even one with no session) once its lease has ended', async () => {
    live.add(LEASE);
    const a = login(LEASE, 'right');
    expect(await a.outcome).toBe('ready');
    live.delete(LEASE);
    const started = Date.now();
    await a.closed;
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe('sourceOf', () => {
  it('counts an IPv4 client by its address and an IPv6 client by its /64', () => {
    expect(sourceOf('127.0.0.1')).toBe('127.0.0.1');
    expect(sourceOf('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(sourceOf('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(sourceOf('2001:0db8:0000:0000:ffff::')).toBe('2001:db8:0:0::/64');
    expect(sourceOf('2001:db8:0:0:1::5')).toBe('2001:db8:0:0::/64');
    expect(sourceOf('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('::1')).toBe('0:0:0:0::/64');
    expect(sourceOf('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(sourceOf(undefined)).toBe('?');
  });
});
