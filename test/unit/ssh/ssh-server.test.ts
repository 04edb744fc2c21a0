import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxProcess } from '../../../src/drivers/compute-driver.js';
import { silentLogger } from '../../../src/log.js';
import { loadOrCreateHostKey } from '../../../src/ssh/host-key.js';
import { SshServer } from '../../../src/ssh/ssh-server.js';

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
    limits: { loginGraceMs: 600, unauthenticated: 2, perLease: 2, leaseCheckMs: 100 },
  });
  port = await server.listen('127.0.0.1', 0);
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw TCP connection that says nothing; resolves with the ms until the server closed it. */
function silent(): { socket: Socket; closed: Promise<number> } {
  const started = Date.now();
  const socket = connect(port, '127.0.0.1');
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
    const a = silent();
    const b = silent();
    await new Promise((r) => setTimeout(r, 100));
    const c = silent();
    expect(await c.closed).toBeLessThan(300);
    await Promise.all([a.closed, b.closed]);
  });
});

/** Logs in with ssh2's client; resolves 'ready' or the error, and with when it closed. */
function login(user: string, password: string) {
  const client = new Client();
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  const outcome = new Promise<string>((resolve) => {
    client.once('ready', () => resolve('ready'));
    client.once('error', (err) => resolve(String(err.message)));
  });
  client.connect({ host: '127.0.0.1', port, username: user, password, readyTimeout: 5000 });
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
