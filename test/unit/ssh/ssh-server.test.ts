import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxProcess } from '../../../src/drivers/compute-driver.js';
import { silentLogger } from '../../../src/log.js';
import { loadOrCreateHostKey } from '../../../src/ssh/host-key.js';
import { SshServer } from '../../../src/ssh/ssh-server.js';

const dir = mkdtempSync(join(tmpdir(), 'alacarte-sshd-'));
let server: SshServer;
let port: number;

const nothing = () => Promise.reject(new Error('not in this test')) as Promise<SandboxProcess>;

beforeAll(async () => {
  server = new SshServer({
    hostKey: loadOrCreateHostKey(join(dir, 'key')),
    leases: {
      lease: async () => undefined,
      passwordMatches: async () => false,
      running: async () => new Set(),
    },
    driver: {
      spawn: nothing,
      sftp: nothing,
      attach: () => Promise.reject(new Error('no')),
      connect: () => Promise.reject(new Error('no')),
    },
    logger: silentLogger(),
    limits: { loginGraceMs: 600, unauthenticated: 2 },
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
