import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { LxdClient } from '../../../src/drivers/lxd/lxd-client.js';
import { LxdDriver } from '../../../src/drivers/lxd/lxd-driver.js';
import { AlacarteNode } from '../../../src/node.js';
import { fundedWallet, postJson, tokenOf } from '../../helpers/lease-node.js';
import { type ProcessResult, runProcess } from '../../helpers/run-process.js';
import { sshClientOptions } from '../../helpers/ssh-client.js';
import { findOnPath } from '../drivers/crun-target.js';
import { type LxdDaemon, lxdSkipReason, startLxd } from '../drivers/lxd-target.js';

/**
 * SSH into a lease on the LXD driver with Debian's stock OpenSSH client: a command that starts a
 * job in the background (`server & echo started`) gives the renter the prompt back when the
 * command exits, as on crun (ComputeDriver.spawn on LXD ends with its command).
 */
const skipReason =
  lxdSkipReason ?? (findOnPath('ssh') ? undefined : 'no ssh client (Debian package openssh-client)');

/** Runs an OpenSSH program to its end, killed after 40 s (code null then). */
function run(program: string, args: string[]): Promise<ProcessResult> {
  return runProcess(program, args, { timeoutMs: 40_000 });
}

describe.skipIf(skipReason)(`SSH into a lease on LXD ${skipReason ?? ''}`, () => {
  let daemon: LxdDaemon;
  let driver: LxdDriver;
  let node: AlacarteNode;
  let dir: string;
  let ssh: (command: string) => Promise<ProcessResult>;
  let sshArgs: (command: string) => string[];
  let exec: (script: string) => Promise<string>;

  beforeAll(async () => {
    daemon = await startLxd();
    dir = mkdtempSync(join(tmpdir(), 'alacarte-lxd-ssh-'));
    const dataDir = join(dir, 'data');
    const config = loadConfig({ flags: { port: 0, dataDir, logLevel: 'silent', ssh: { port: 0 } } });
    driver = await LxdDriver.create({
      client: new LxdClient({ socketPath: daemon.socketPath }),
      imagesDir: join(dataDir, 'images'),
      runtimeDir: join(dataDir, 'lxd-sandboxes'),
    });
    node = await AlacarteNode.create(config, { driver, images: ['busybox'] });
    const { url, mintUrl } = await node.listen();
    const offers = (await (await fetch(`${url}/v1/offers`)).json()) as { ssh: { port: number } };
    const port = String(offers.ssh.port);
    const key = join(dir, 'id_renter');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, (await run('ssh-keyscan', ['-p', port, '-t', 'ed25519', '127.0.0.1'])).stdout);

    const { wallet, proofs } = await fundedWallet(mintUrl, 200);
    const { token } = await tokenOf(wallet, mintUrl, proofs, 60);
    const created = await postJson(
      `${url}/v1/leases`,
      {
        offer: 'small',
        seconds: 3600,
        image: 'busybox',
        ssh_keys: [readFileSync(`${key}.pub`, 'utf8').trim()],
      },
      { 'x-cashu': token },
    );
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const lease = created.body as { id: string; token: string };
    // A stock client: only this test's known_hosts and key, no config, no agent.
    sshArgs = (command) => [
      ...sshClientOptions(knownHosts, key),
      '-p',
      port,
      `${lease.id}@127.0.0.1`,
      '--',
      command,
    ];
    ssh = (command) => run('ssh', sshArgs(command));
    exec = async (script) => {
      const r = await postJson(
        `${url}/v1/leases/${lease.id}/exec`,
        { command: ['sh', '-c', script] },
        { authorization: `Bearer ${lease.token}` },
      );
      return String(r.body.stdout);
    };
  }, 180_000);

  afterAll(async () => {
    if (driver) for (const s of await driver.list().catch(() => [])) await driver.stop(s).catch(() => {});
    await node?.close();
    await driver?.close();
    await daemon?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('returns from a command that left a job holding its output, with its output and exit code', async () => {
    // Before LXD's spawn ended with its command, the session waited for the job (600 s) and the
    // client was killed here after 40 s (code null).
    const r = await ssh('sleep 600 & echo started; exit 4');
    expect(r).toEqual({ code: 4, stdout: 'started\n', stderr: '' });
    // The session ended, and the lease still answers; the job was left running, as sshd does.
    expect(await exec('echo still')).toBe('still\n');
    expect(await exec('ps -o args | grep -c "^sleep 600"')).toBe('1\n');
    await exec('pkill -f "^sleep 600"');
  }, 90_000);

  it('leaves a server started with nohup or setsid running after the command returns', async () => {
    // The busybox image has no nohup: what coreutils' does, ignore SIGHUP and run the command.
    await exec(`printf '%s\n' '#!/bin/sh' 'trap "" HUP' 'exec "$@"' >/bin/nohup && chmod 755 /bin/nohup`);
    for (const [start, port] of [
      ['nohup sh -c "sleep 1; httpd -f -p 8081 -h /etc" >/dev/null 2>&1 &', 8081],
      ['setsid httpd -f -p 8082 -h /etc </dev/null >/dev/null 2>&1 &', 8082],
    ] as const) {
      const r = await ssh(start);
      expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
      let page = '';
      for (let i = 0; i < 40 && !page.includes('root:'); i++) {
        await new Promise((done) => setTimeout(done, 500));
        page = await exec(`wget -qO- http://127.0.0.1:${port}/passwd || true`);
      }
      const seen = page.includes('root:') ? '' : await exec('ps -o pid,args; netstat -ltn');
      expect(page, seen).toContain('root:');
      await exec(`pkill -f "^httpd -f -p ${port}"`);
    }
  }, 90_000);

  it('returns at the command exit while a job keeps writing to the channel', async () => {
    const r = await ssh(
      'sh -c "while :; do echo tick; echo tock >&2; sleep 0.1; done" & echo started; exit 6',
    );
    expect(r.code).toBe(6);
    expect(r.stdout).toMatch(/(^|\n)started\n/);
    await new Promise((done) => setTimeout(done, 1000));
    expect(await exec('ps -o args | grep -c "^sh -c while :; do echo tick"')).toBe('1\n');
    await exec('pkill -f "^sh -c while :; do echo tick"');
  }, 90_000);

  it('hangs up a command whose client went away, and leaves what it started running', async () => {
    const child = spawn('ssh', sshArgs('sleep 601 & echo up; exec sleep 602'));
    child.stdin.end();
    child.stderr.resume();
    await new Promise<void>((up) => child.stdout.once('data', () => up()));
    child.kill('SIGKILL');
    let left = '';
    for (let i = 0; i < 40; i++) {
      left = await exec('ps -o args | grep "^sleep 60[12]" || true');
      if (!left.includes('sleep 602')) break;
      await new Promise((done) => setTimeout(done, 250));
    }
    expect(left).toBe('sleep 601\n');
    await exec('pkill -f "^sleep 601"');
  }, 90_000);
});
