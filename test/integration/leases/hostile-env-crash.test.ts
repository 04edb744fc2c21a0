import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../../helpers/cli.js';
import { postJson, tokens } from '../../helpers/lease-node.js';
import { NodeProcess } from '../../helpers/node-process.js';

/**
 * Issue 9, part 2: a lease's `env` used to be sourced into the sandbox init's own shell, so
 * `{"D": "/dev/zero"}` (init's variable naming the deadline file) kept the sandbox from ending at
 * its deadline on its own. Here the built server runs leases with such environments and is killed
 * with SIGKILL: with no node left, each sandbox must still end at its deadline.
 */
const nodeProcess = new NodeProcess({
  prefix: 'hostile-env',
  config: {
    offers: [
      {
        id: 'short',
        vcpu: 0.25,
        memory_mib: 64,
        pids: 64,
        disk_mib: 16,
        min_seconds: 1,
        price: { amount_per_hour: 60, unit: 'sat' },
      },
    ],
  },
  env: { ALACARTE_OPERATOR_TOKEN: 'operator-token-for-hostile-env-0123' },
});
const runtimeDir = nodeProcess.runtimeDir;

afterAll(() => nodeProcess.cleanup());

/** The host pid of a lease's sandbox init, read from the driver's files (see crun README, layout). */
function initPidOf(leaseId: string): number {
  const container = readlinkSync(join(runtimeDir, leaseId));
  return Number.parseInt(readFileSync(join(runtimeDir, container, 'init.pid'), 'utf8'), 10);
}

function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('the node killed -9 with hostile env in running leases', () => {
  it('each sandbox ends at its deadline on its own', async () => {
    expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
    const server = await nodeProcess.start();
    const hostile: Record<string, string>[] = [
      { D: '/dev/zero' },
      { R: '/nonexistent', d: '99999999999', r: '3600', x: 'x', started: '' },
      { PATH: '/dev/zero', IFS: '0123456789', ENV: '/dev/zero', HOME: '/dev/zero' },
    ];
    const { tokens: pool } = await tokens(server.mintUrl, hostile.length, 2);
    const leases: { id: string; pid: number; expiresAt: number }[] = [];
    for (const [i, env] of hostile.entries()) {
      const res = await postJson(
        `${server.url}/v1/leases`,
        { offer: 'short', seconds: 6 + 2 * i, image: 'busybox', env, command: ['/bin/sleep', '1000'] },
        { 'x-cashu': pool[i]?.token ?? '' },
      );
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      const id = String(res.body.id);
      leases.push({ id, pid: initPidOf(id), expiresAt: Date.parse(String(res.body.expires_at)) });
    }
    await nodeProcess.kill();

    for (const [i, l] of leases.entries()) {
      expect(l.pid).toBeGreaterThan(1);
      if (Date.now() < l.expiresAt - 500) expect(alive(l.pid)).toBe(true);
      // Nothing of the node is left to end it: only the sandbox's own init can, at its deadline.
      while (alive(l.pid) && Date.now() < l.expiresAt + 5000) await sleep(100);
      expect(alive(l.pid), `lease ${i} with env ${JSON.stringify(hostile[i])} outlived its deadline`).toBe(
        false,
      );
    }
  });
});
