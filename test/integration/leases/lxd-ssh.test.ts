import { execFileSync } from 'node:child_process';
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
import { sshBackgroundCases } from './ssh-background.contract.js';

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

  sshBackgroundCases(() => ({ sshArgs, inside: exec }), 90_000);
});
