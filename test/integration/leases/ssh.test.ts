import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Proof, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allUnspent,
  freePort,
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../../helpers/lease-node.js';
import { type ProcessResult, runProcess, type Typing } from '../../helpers/run-process.js';
import { sshClientOptions } from '../../helpers/ssh-client.js';
import { waitForShell } from '../../helpers/terminal.js';
import { sshBackgroundCases } from './ssh-background.contract.js';

/**
 * SSH into a paid lease with Debian's stock OpenSSH client (`ssh`, `scp`, `sftp`), as a renter
 * would: the host key is trusted only after its fingerprint matched the one /v1/offers shows.
 */

let t: LeaseTestNode;
let dir: string;
let sshPort: number;
let knownHosts: string;
let key: string;
let otherKey: string;
let wallet: Wallet;
let proofs: Proof[];
/** Moves the node's clock forward, to expire a lease without waiting. */
let clockOffsetMs = 0;

interface Lease {
  id: string;
  token: string;
  ssh: { host: string; port: number; user: string };
}
let lease: Lease;

/** Runs an OpenSSH program to its end (killed after 30 s unless `timeoutMs` says otherwise). */
function run(
  program: string,
  args: string[],
  options: { input?: string; typing?: Typing; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ProcessResult> {
  return runProcess(program, args, { timeoutMs: 30_000, ...options });
}

/** Options every client call shares: only the test's known_hosts, no config, no agent. */
function common(identity: string | null = key): string[] {
  return sshClientOptions(knownHosts, identity);
}

function ssh(user: string, command: string[], options: { input?: string; identity?: string } = {}) {
  return run(
    'ssh',
    [...common(options.identity ?? key), '-p', String(sshPort), `${user}@127.0.0.1`, '--', ...command],
    { input: options.input },
  );
}

/** Runs `script` in the test's lease through its exec route (not SSH); its stdout. */
async function inside(script: string): Promise<string> {
  const res = await postJson(
    `${t.url}/v1/leases/${lease.id}/exec`,
    { command: ['sh', '-c', script] },
    { authorization: `Bearer ${lease.token}` },
  );
  return String(res.body.stdout);
}

async function rent(body: Record<string, unknown>, seconds = 600): Promise<{ status: number; body: Lease }> {
  const paid = await tokenOf(wallet, t.mintUrl, proofs, 10);
  proofs = paid.keep;
  const res = await postJson(
    `${t.url}/v1/leases`,
    { offer: 'small', seconds, image: 'busybox', ...body },
    { 'x-cashu': paid.token },
  );
  return { status: res.status, body: res.body as unknown as Lease };
}

function keygen(name: string): string {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@test`, '-f', path]);
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'alacarte-ssh-'));
  t = await startLeaseNode({}, undefined, { clock: () => new Date(Date.now() + clockOffsetMs) });
  ({ wallet, proofs } = await fundedWallet(t.mintUrl, 200));
  key = keygen('id_renter');
  otherKey = keygen('id_other');

  const offers = (await (await fetch(`${t.url}/v1/offers`)).json()) as {
    ssh: { port: number; host_key_sha256: string };
  };
  sshPort = offers.ssh.port;
  // Trust the host key only once it matches the fingerprint the API published.
  // (Asynchronously: the server answering it runs in this very process.)
  const scanned = (await run('ssh-keyscan', ['-p', String(sshPort), '-t', 'ed25519', '127.0.0.1'])).stdout;
  expect(scanned).toContain('ssh-ed25519');
  knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, scanned);
  const fingerprint = execFileSync('ssh-keygen', ['-lf', knownHosts], { encoding: 'utf8' });
  expect(fingerprint).toContain(offers.ssh.host_key_sha256);
  expect(offers.ssh.host_key_sha256).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);

  const res = await rent({
    ssh_keys: [readFileSync(`${key}.pub`, 'utf8').trim()],
    // A web server the lease serves on its own loopback, for port forwarding.
    command: [
      'sh',
      '-c',
      'mkdir -p /srv && echo hello-from-the-lease > /srv/index.html && exec httpd -f -p 8080 -h /srv',
    ],
  });
  expect(res.status).toBe(201);
  lease = res.body;
}, 60_000);

afterAll(async () => {
  await t?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('SSH into a lease with the stock OpenSSH client', () => {
  it('shows where to log in, in every lease answer', async () => {
    expect(lease.ssh).toEqual({ host: '127.0.0.1', port: sshPort, user: lease.id });
    const res = await fetch(`${t.url}/v1/leases/${lease.id}`, {
      headers: { authorization: `Bearer ${lease.token}` },
    });
    expect(((await res.json()) as Lease).ssh).toEqual(lease.ssh);
  });

  it('runs a command with a key of the lease: lease.json names the lease', async () => {
    const r = await ssh(lease.id, ['cat', '/run/alacarte/lease.json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).id).toBe(lease.id);
  });

  // The sandbox's init runs with no_new_privs (its OCI config); what SSH starts goes through the
  // runtime's exec, which leaves it out unless asked (--no-new-privs in spawn.ts and attach.ts).
  // A setuid program in an image could otherwise gain privileges that init never had.
  it('runs commands, terminals and sftp-server with no_new_privs, as the sandbox init has it', async () => {
    const command = await ssh(lease.id, ['cat', '/proc/self/status']);
    expect(command.code, command.stderr).toBe(0);
    expect(command.stdout.split('\n')).toContain('NoNewPrivs:\t1');
    // On a terminal (ssh -t): the path of attach.ts.
    const onTty = await run('ssh', [
      '-tt',
      ...common(),
      '-p',
      String(sshPort),
      `${lease.id}@127.0.0.1`,
      '--',
      'cat /proc/self/status',
    ]);
    expect(onTty.code).toBe(0);
    expect(onTty.stdout).toMatch(/^NoNewPrivs:\s+1\r?$/m);
    // sftp-server (run by the host's loader inside) reads its own status: the file it hands back
    // says what it runs with.
    const fetched = join(dir, 'sftp-server-status');
    const batch = join(dir, 'status-batch');
    writeFileSync(batch, `get /proc/self/status ${fetched}\n`);
    const sftp = await run('sftp', [
      ...common(),
      '-P',
      String(sshPort),
      '-b',
      batch,
      `${lease.id}@127.0.0.1`,
    ]);
    expect(sftp.code, sftp.stderr).toBe(0);
    expect(readFileSync(fetched, 'utf8').split('\n')).toContain('NoNewPrivs:\t1');
  });

  it('passes the exit code, stderr and stdin through', async () => {
    const r = await ssh(lease.id, ['read x; echo "got $x"; echo oops >&2; exit 7'], { input: 'hello\n' });
    expect(r.code).toBe(7);
    expect(r.stdout).toBe('got hello\n');
    expect(r.stderr).toBe('oops\n');
  });

  sshBackgroundCases(
    () => ({
      sshArgs: (command) => [...common(), '-p', String(sshPort), `${lease.id}@127.0.0.1`, '--', command],
      inside,
    }),
    60_000,
  );

  it('logs in with the bearer credential as password', async () => {
    const askpass = join(dir, 'askpass.sh');
    writeFileSync(askpass, `#!/bin/sh\nprintf '%s\\n' '${lease.token}'\n`);
    chmodSync(askpass, 0o700);
    const r = await run(
      'ssh',
      [
        ...common(null),
        '-o',
        'PreferredAuthentications=password',
        '-o',
        'PubkeyAuthentication=no',
        '-p',
        String(sshPort),
        `${lease.id}@127.0.0.1`,
        '--',
        'echo password-ok',
      ],
      { env: { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' } },
    );
    expect(r.stdout).toBe('password-ok\n');
    expect(r.code).toBe(0);
  });

  it('bounds wrong passwords: the connection closes after 6 refusals', async () => {
    const count = join(dir, 'asked');
    const askpass = join(dir, 'wrong-askpass.sh');
    writeFileSync(askpass, `#!/bin/sh\necho x >> '${count}'\necho wrong-password\n`);
    chmodSync(askpass, 0o700);
    const r = await run(
      'ssh',
      [
        ...common(null),
        '-o',
        'PreferredAuthentications=password',
        '-o',
        'PubkeyAuthentication=no',
        '-o',
        'NumberOfPasswordPrompts=20',
        '-p',
        String(sshPort),
        `${lease.id}@127.0.0.1`,
        '--',
        'true',
      ],
      { env: { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' } },
    );
    expect(r.code).toBe(255);
    const asked = readFileSync(count, 'utf8').split('\n').filter(Boolean).length;
    expect(asked).toBeGreaterThanOrEqual(6);
    expect(asked).toBeLessThanOrEqual(7);
  });

  it('opens a shell on a real terminal (PTY)', async () => {
    const r = await run('ssh', ['-tt', ...common(), '-p', String(sshPort), `${lease.id}@127.0.0.1`], {
      // Typed once the shell reads: keys that come before its line editing may be dropped.
      typing: async (keys, screen) => {
        await waitForShell(keys, screen);
        keys.write('tty; stty size; exit 3\n');
      },
      timeoutMs: 45_000,
    });
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+/);
    expect(r.code).toBe(3);
  });

  it('runs a command on a terminal when asked (ssh -t)', async () => {
    const r = await run('ssh', [
      '-tt',
      ...common(),
      '-p',
      String(sshPort),
      `${lease.id}@127.0.0.1`,
      '--',
      'tty',
    ]);
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r*\n$/);
    expect(r.code).toBe(0);
    // The exit code comes back from a terminal too. (A command that fails within milliseconds gets
    // its output wrapped in a crun error line: a crun quirk, see the report of issue 10.)
    const failing = await run('ssh', [
      '-tt',
      ...common(),
      '-p',
      String(sshPort),
      `${lease.id}@127.0.0.1`,
      '--',
      'sleep 0.3; exit 5',
    ]);
    expect(failing.code).toBe(5);
  });

  it('copies 1 MiB up and back with scp, byte for byte', async () => {
    const data = randomBytes(1024 * 1024);
    writeFileSync(join(dir, 'up.bin'), data);
    const target = `${lease.id}@127.0.0.1`;
    const up = await run('scp', [
      ...common(),
      '-P',
      String(sshPort),
      join(dir, 'up.bin'),
      `${target}:/tmp/up.bin`,
    ]);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const sum = await ssh(lease.id, ['sha256sum /tmp/up.bin']);
    expect(sum.stdout.split(' ')[0]).toBe(
      execFileSync('sha256sum', [join(dir, 'up.bin')], { encoding: 'utf8' }).split(' ')[0],
    );
    const down = await run('scp', [
      ...common(),
      '-P',
      String(sshPort),
      `${target}:/tmp/up.bin`,
      join(dir, 'down.bin'),
    ]);
    expect(down.code).toBe(0);
    expect(readFileSync(join(dir, 'down.bin')).equals(data)).toBe(true);
  });

  it('serves sftp: put, ls, get', async () => {
    writeFileSync(join(dir, 'note.txt'), 'a note for the lease\n');
    const batch = join(dir, 'batch');
    writeFileSync(
      batch,
      [
        `put ${join(dir, 'note.txt')} /root/note.txt`,
        'ls -l /root',
        `get /root/note.txt ${join(dir, 'back.txt')}`,
        // Relative paths start in root's home, as under sshd.
        'pwd',
        `put ${join(dir, 'note.txt')} relative.txt`,
      ].join('\n'),
    );
    const r = await run('sftp', [...common(), '-P', String(sshPort), '-b', batch, `${lease.id}@127.0.0.1`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('note.txt');
    expect(r.stdout).toContain('Remote working directory: /root');
    expect((await ssh(lease.id, ['cat /root/relative.txt'])).stdout).toBe('a note for the lease\n');
    expect(readFileSync(join(dir, 'back.txt'), 'utf8')).toBe('a note for the lease\n');
    // The file is in the sandbox, where a command sees it.
    expect((await ssh(lease.id, ['cat /root/note.txt'])).stdout).toBe('a note for the lease\n');
  });

  it('forwards a local port to a port the lease serves (ssh -L), and to nothing else', async () => {
    const local = await freePort();
    const tunnel = spawn('ssh', [
      ...common(),
      '-N',
      '-o',
      'ExitOnForwardFailure=yes',
      '-L',
      `${local}:localhost:8080`,
      '-p',
      String(sshPort),
      `${lease.id}@127.0.0.1`,
    ]);
    try {
      let body = '';
      for (let i = 0; i < 50 && !body; i++) {
        await new Promise((r) => setTimeout(r, 200));
        body = await fetch(`http://127.0.0.1:${local}/index.html`).then(
          (r) => r.text(),
          () => '',
        );
      }
      expect(body).toBe('hello-from-the-lease\n');
    } finally {
      tunnel.kill();
    }
    // The IPv6 loopback is the sandbox's too (httpd listens on `::`, so only in tcp6).
    const v6 = await run(
      'ssh',
      [...common(), '-W', '[::1]:8080', '-p', String(sshPort), `${lease.id}@127.0.0.1`],
      { input: 'GET /index.html HTTP/1.0\r\n\r\n' },
    );
    expect(v6.stdout, v6.stderr).toContain('hello-from-the-lease');
    // Another host than the sandbox's loopback: the channel is refused.
    const other = await run('ssh', [
      ...common(),
      '-W',
      `127.0.0.2:${t.url.split(':').pop()}`,
      '-p',
      String(sshPort),
      `${lease.id}@127.0.0.1`,
    ]);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/stdio forwarding failed/);
    // Remote forwarding (a listener on the node for the tenant) is refused too.
    const remote = await run('ssh', [
      ...common(),
      '-N',
      '-o',
      'ExitOnForwardFailure=yes',
      '-R',
      '0:localhost:8080',
      '-p',
      String(sshPort),
      `${lease.id}@127.0.0.1`,
    ]);
    expect(remote.code).toBe(255);
    expect(remote.stderr).toMatch(/remote port forwarding failed/);
  });

  it('refuses a key that is not the lease’s, another lease and a user that is no lease', async () => {
    const wrongKey = await ssh(lease.id, ['true'], { identity: otherKey });
    expect(wrongKey.code).toBe(255);
    expect(wrongKey.stderr).toMatch(/Permission denied/);
    const noLease = await ssh('lse_00000000000000000000000000', ['true']);
    expect(noLease.code).toBe(255);
    expect(noLease.stderr).toMatch(/Permission denied/);
    const root = await ssh('root', ['true']);
    expect(root.code).toBe(255);
    expect(root.stderr).toMatch(/Permission denied/);
    // A lease whose keys are not this one's.
    const second = await rent({ ssh_keys: [readFileSync(`${otherKey}.pub`, 'utf8').trim()] });
    expect(second.status).toBe(201);
    const crossed = await ssh(second.body.id, ['true']);
    expect(crossed.code).toBe(255);
    expect((await ssh(second.body.id, ['echo mine'], { identity: otherKey })).stdout).toBe('mine\n');
  });

  it('refuses a bad key in the request before any payment (400 invalid_request)', async () => {
    const paid = await tokenOf(wallet, t.mintUrl, proofs, 10);
    proofs = paid.keep;
    for (const bad of [
      'ssh-ed25519 AAAAnotakey',
      readFileSync(key, 'utf8'),
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIFiuiirZTHo4GQGQzAEcIbqEela0E7soOWZYpoVGVAj\nssh-rsa x',
    ]) {
      const res = await postJson(
        `${t.url}/v1/leases`,
        { offer: 'small', seconds: 600, image: 'busybox', ssh_keys: [bad] },
        { 'x-cashu': paid.token },
      );
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
    }
    const nine = Array.from({ length: 9 }, () => readFileSync(`${key}.pub`, 'utf8').trim());
    const tooMany = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'small', seconds: 600, image: 'busybox', ssh_keys: nine },
      { 'x-cashu': paid.token },
    );
    expect(tooMany.status).toBe(400);
    expect(await allUnspent(wallet, paid.send)).toBe(true);
    proofs = [...proofs, ...paid.send];
  });

  it('closes an open session when its lease is stopped, with a message', async () => {
    const res = await rent({ ssh_keys: [readFileSync(`${key}.pub`, 'utf8').trim()] });
    expect(res.status).toBe(201);
    const session = ssh(res.body.id, ['echo started; sleep 600']);
    await new Promise((r) => setTimeout(r, 1500));
    const stopped = await postJson(
      `${t.url}/v1/leases/${res.body.id}`,
      undefined,
      {
        authorization: `Bearer ${res.body.token}`,
      },
      'DELETE',
    );
    expect(stopped.status).toBe(200);
    const r = await session;
    expect(r.stdout).toBe('started\n');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('has ended');
    // And it cannot log in again.
    expect((await ssh(res.body.id, ['true'])).stderr).toMatch(/Permission denied/);
  });

  it('refuses an expired lease and closes its sessions', async () => {
    const res = await rent({ ssh_keys: [readFileSync(`${key}.pub`, 'utf8').trim()] }, 120);
    expect(res.status).toBe(201);
    const session = ssh(res.body.id, ['echo started; sleep 600']);
    await new Promise((r) => setTimeout(r, 1500));
    clockOffsetMs = 200_000;
    const r = await session;
    expect(r.stdout).toBe('started\n');
    expect(r.code).not.toBe(0);
    const again = await ssh(res.body.id, ['true']);
    expect(again.code).toBe(255);
    expect(again.stderr).toMatch(/Permission denied/);
    // The long lease still runs.
    expect((await ssh(lease.id, ['echo alive'])).stdout).toBe('alive\n');
  });
});

describe('a node with SSH off', () => {
  it('shows no ssh in offers nor in lease answers, and listens on no SSH port', async () => {
    const off = await startLeaseNode({ ssh: { enabled: false } });
    try {
      const offers = (await (await fetch(`${off.url}/v1/offers`)).json()) as Record<string, unknown>;
      expect(offers.ssh).toBeUndefined();
      const { wallet: w, proofs: p } = await fundedWallet(off.mintUrl, 20);
      const { token } = await tokenOf(w, off.mintUrl, p, 10);
      const res = await postJson(
        `${off.url}/v1/leases`,
        { offer: 'small', seconds: 600, image: 'busybox' },
        { 'x-cashu': token },
      );
      expect(res.status).toBe(201);
      expect(res.body.ssh).toBeUndefined();
    } finally {
      await off.close();
    }
  }, 60_000);
});
