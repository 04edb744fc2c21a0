import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../../helpers/lease-node.js';
import { runProcess } from '../../helpers/run-process.js';
import { crunSkipReason } from '../drivers/crun-target.js';

describe.skipIf(crunSkipReason)('deadline notices in an attach session', () => {
  let t: LeaseTestNode;

  beforeAll(async () => {
    // A 60 s lease told 110 s and 57 s before its end: the first is past at once, the second
    // comes about 3 s in; after a 60 s extension the first comes again (new deadline - 110 s).
    t = await startLeaseNode({}, undefined, { deadlineNoticeOffsetsMs: [110_000, 57_000] });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('shows a line before the lease ends, and again after an extension', async () => {
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
    const first = await tokenOf(wallet, t.mintUrl, proofs, 10);
    const res = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'small', seconds: 60, image: 'busybox' },
      { 'x-cashu': first.token },
    );
    expect(res.status).toBe(201);
    const lease = res.body as { id: string; token: string; expires_at: string };
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/v1/leases/${lease.id}/attach`, [
      `bearer.${lease.token}`,
    ]);
    let screen = '';
    ws.on('message', (data: Buffer) => {
      screen += data.toString('utf8');
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const waitFor = (pattern: RegExp, ms: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${pattern} in: ${screen}`)), ms);
        const check = () => {
          if (!pattern.test(screen)) return;
          clearTimeout(timer);
          ws.off('message', check);
          resolve();
        };
        ws.on('message', check);
        check();
      });
    const at = lease.expires_at.slice(11, 19);
    await waitFor(
      new RegExp(
        `\\[alacarte\\] this lease ends in 5\\d seconds \\(${at} UTC\\); to keep it: alacarte extend ${lease.id} --for 1h`,
      ),
      15_000,
    );
    expect(screen.match(/\[alacarte\]/g)).toHaveLength(1);

    const more = await tokenOf(wallet, t.mintUrl, first.keep, 10);
    const extended = await postJson(
      `${t.url}/v1/leases/${lease.id}/extend`,
      { seconds: 60 },
      { 'x-cashu': more.token },
    );
    expect(extended.status).toBe(200);
    const newAt = String(extended.body.expires_at).slice(11, 19);
    await waitFor(new RegExp(`this lease ends in 2 minutes \\(${newAt} UTC\\)`), 20_000);
    expect(screen.match(/\[alacarte\]/g)).toHaveLength(2);
    ws.close();
  }, 60_000);

  it('tells an open SSH session too, on its stderr', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-notice-ssh-'));
    try {
      const key = join(dir, 'id');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
      const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
      const paid = await tokenOf(wallet, t.mintUrl, proofs, 10);
      const res = await postJson(
        `${t.url}/v1/leases`,
        {
          offer: 'small',
          seconds: 60,
          image: 'busybox',
          ssh_keys: [readFileSync(`${key}.pub`, 'utf8').trim()],
        },
        { 'x-cashu': paid.token },
      );
      expect(res.status).toBe(201);
      const lease = res.body as { id: string; ssh: { port: number } };
      // The host key's check is the SSH suite's; here only the notice matters.
      const { code, stdout, stderr } = await runProcess('ssh', [
        ...['-F', '/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
        ...['-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', key],
        ...['-p', String(lease.ssh.port), `${lease.id}@127.0.0.1`, '--', 'echo started; sleep 15; echo done'],
      ]);
      expect(code).toBe(0);
      expect(stdout).toBe('started\ndone\n');
      expect(stderr).toMatch(
        new RegExp(`\\[alacarte\\] this lease ends in 5\\d seconds .*alacarte extend ${lease.id}`),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
