import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxProcess } from '../../../src/drivers/compute-driver.js';
import { silentLogger } from '../../../src/log.js';
import { loadOrCreateHostKey } from '../../../src/ssh/host-key.js';
import { SshServer } from '../../../src/ssh/ssh-server.js';

const { Client } = ssh2;

/**
 * What an SSH command's end does to the process the driver spawned, as sshd: its exit ends the
 * channel and nothing is killed after; a client gone before the exit hangs it up, never kills it.
 */
const dir = mkdtempSync(join(tmpdir(), 'alacarte-sshs-'));
const LEASE = 'lse_0000000000000000000000000b';
let server: SshServer;
let port: number;

interface Fake {
  proc: SandboxProcess;
  stdout: PassThrough;
  stderr: PassThrough;
  exit(code: number): void;
  calls: string[];
}
const spawned: Fake[] = [];

function fakeProcess(): Fake {
  const calls: string[] = [];
  let exit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => {
    exit = resolve;
  });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const proc: SandboxProcess = {
    stdin: new PassThrough().resume(),
    stdout,
    stderr,
    exited,
    kill: () => calls.push('kill'),
    hangup: () => calls.push('hangup'),
  };
  return { proc, stdout, stderr, exit, calls };
}

beforeAll(async () => {
  server = new SshServer({
    hostKey: loadOrCreateHostKey(join(dir, 'key')),
    leases: {
      lease: async () => undefined,
      passwordMatches: async (user, password) => user === LEASE && password === 'right',
      running: async (ids) => new Set(ids.filter((id) => id === LEASE)),
    },
    driver: {
      spawn: async () => {
        const fake = fakeProcess();
        spawned.push(fake);
        return fake.proc;
      },
      sftp: () => Promise.reject(new Error('no')),
      attach: () => Promise.reject(new Error('no')),
      connect: () => Promise.reject(new Error('no')),
    },
    logger: silentLogger(),
  });
  port = await server.listen('127.0.0.1', 0);
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function login(): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.connect({ host: '127.0.0.1', port, username: LEASE, password: 'right' });
  });
}

function execOn(c: ssh2.Client, command: string): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => c.exec(command, (err, ch) => (err ? reject(err) : resolve(ch))));
}

async function started(count: number): Promise<Fake> {
  for (let i = 0; i < 100 && spawned.length < count; i++) await new Promise((r) => setTimeout(r, 20));
  const fake = spawned[count - 1];
  if (!fake) throw new Error('nothing was spawned');
  return fake;
}

describe('an SSH command and what it started', () => {
  it('ends the channel at the command exit and kills nothing then, nor when the client leaves', async () => {
    const c = await login();
    const ch = await execOn(c, 'server &');
    const fake = await started(1);
    let out = '';
    ch.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const status = new Promise<number>((resolve) => ch.once('exit', (code: number) => resolve(code)));
    const closed = new Promise<void>((resolve) => ch.once('close', () => resolve()));
    fake.stdout.write('started\n');
    fake.stdout.end();
    fake.stderr.end();
    fake.exit(0);
    expect(await status).toBe(0);
    await closed;
    expect(out).toBe('started\n');
    c.end();
    await new Promise((r) => setTimeout(r, 300));
    // Before, the channel close SIGKILLed the session of the command: its jobs died.
    expect(fake.calls).toEqual([]);
  });

  it('hangs up, and does not kill, a command whose client went away before it exited', async () => {
    const c = await login();
    await execOn(c, 'sleep 600 & exec sleep 601');
    const fake = await started(2);
    c.end();
    for (let i = 0; i < 50 && fake.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    // Once, however many of the channel close and the connection close tell it.
    expect(fake.calls).toEqual(['hangup']);
    fake.exit(129);
  });
});
