import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { Alacarte } from '../../../src/sdk/client.js';
import { LocalWallet } from '../../../src/wallet/local-wallet.js';
import { tempDir } from '../../helpers/cli.js';
import { type LeaseTestNode, postJson, startLeaseNode, sumOf } from '../../helpers/lease-node.js';
import { runCli, runJson } from './run-cli.js';

/**
 * A lease whose sandbox died is ended by the node with its unused time refunded; the built CLI
 * collects that refund into the wallet by itself, at the next command, without `stop`. Needs
 * `npm run build`.
 */
let t: LeaseTestNode;
beforeAll(async () => {
  t = await startLeaseNode();
}, 120_000);
afterAll(async () => {
  await t?.close();
});

type Balance = { balance: number };

describe('alacarte CLI: refunds of leases the node ended', { timeout: 240_000 }, () => {
  it('`leases` collects the refund of a lease whose sandbox died, once', async () => {
    const me = { home: tempDir('cli-refund'), url: t.url };
    await runJson(['wallet', 'topup', '500'], me);
    const lease = await runJson<{ id: string; paid: number }>(
      ['rent', '--offer', 'small', '--for', '2h'],
      me,
    );
    expect(lease.paid).toBe(120);
    // The sandbox dies under the running node (out of memory, killed from outside…).
    await t.driver.stop({ leaseId: lease.id });
    await expect
      .poll(async () => (await t.node.leases?.countByState())?.stopped, { timeout: 20_000 })
      .toBe(1);

    const listed = await runCli(['leases'], me);
    expect(listed.code).toBe(0);
    const said = new RegExp(
      `lease ${lease.id} was stopped before its time, not by this program \\(by a request with its credential, e\\.g\\. a curl; or by the node, when its sandbox ended: out of memory, say\\); refunded (\\d+) sat into the wallet`,
    ).exec(listed.stderr);
    expect(said, listed.stderr).not.toBeNull();
    const refunded = Number(said?.[1]);
    // Two hours bought, dead within seconds: almost all of it comes back.
    expect(refunded).toBeGreaterThanOrEqual(118);
    expect(refunded).toBeLessThanOrEqual(120);
    expect(listed.stdout).toMatch(new RegExp(`${lease.id}\\s+stopped\\s+small`));

    const balance = await runCli(['wallet', 'balance', '--json'], me);
    expect((JSON.parse(balance.stdout) as Balance).balance).toBe(380 + refunded);
    // Collected once: no second refund, no second message.
    expect(balance.stderr).not.toContain('stopped before its time');
  });

  it('any wallet command collects it too (here: `wallet balance`)', async () => {
    const me = { home: tempDir('cli-refund'), url: t.url };
    await runJson(['wallet', 'topup', '200'], me);
    const lease = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '1h'], me);
    await t.driver.stop({ leaseId: lease.id });
    await expect
      .poll(async () => (await t.node.leases?.countByState())?.stopped, { timeout: 20_000 })
      .toBe(2);
    const balance = await runCli(['wallet', 'balance'], me);
    expect(balance.code).toBe(0);
    expect(balance.stderr).toMatch(
      new RegExp(`lease ${lease.id} was stopped before its time, not by this program .+refunded 5\\d sat`),
    );
    expect(balance.stdout).toMatch(/^(19\d|200) sat\n$/);
  });

  it('the SDK: status() of a lease the node stopped collects its refund, once', async () => {
    const wallet = LocalWallet.open({ home: tempDir('sdk-refund') });
    try {
      const topup = await wallet.createTopup(t.mintUrl, Amount.of(100));
      await wallet.completeTopup(topup.opId);
      const sdk = new Alacarte({ url: t.url, wallet });
      const lease = await sdk.rent({ offer: 'small', seconds: 3600, image: 'busybox' });
      expect(Number(wallet.balance().value)).toBe(40);
      await t.driver.stop({ leaseId: lease.id });
      await expect
        .poll(async () => (await t.node.leases?.countByState())?.stopped, { timeout: 20_000 })
        .toBe(3);
      const seen = await sdk.status(lease.id);
      expect(seen.state).toBe('stopped');
      expect(seen.refunded).toBeGreaterThanOrEqual(58);
      expect(Number(wallet.balance().value)).toBe(40 + (seen.refunded as number));
      // Already collected: nothing more comes back, and the list has nothing left to collect.
      expect(await sdk.collectRefunds()).toEqual([]);
      expect((await sdk.status(lease.id)).refunded).toBeUndefined();
      expect(Number(wallet.balance().value)).toBe(40 + (seen.refunded as number));
    } finally {
      wallet.close();
    }
  });

  it('a lease stopped elsewhere whose refund was redeemed there: told so, not "refunded into the wallet"', async () => {
    const me = { home: tempDir('cli-refund'), url: t.url };
    await runJson(['wallet', 'topup', '200'], me);
    const lease = await runJson<{ id: string }>(['rent', '--offer', 'small', '--for', '1h'], me);
    const { token } = (
      JSON.parse(readFileSync(join(me.home, 'leases.json'), 'utf8')) as {
        leases: Array<{ id: string; token: string }>;
      }
    ).leases.find((l) => l.id === lease.id) as { token: string };
    // Someone else holding the credential stops it (curl, the web page) and takes the refund.
    const stop = await postJson(
      `${t.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${token}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
    const elsewhere = new Wallet(t.mintUrl, { unit: 'sat' });
    await elsewhere.loadMint();
    expect(sumOf(await elsewhere.receive(stop.body.refund as string))).toBe(stop.body.refunded);

    const listed = await runCli(['leases'], me);
    expect(listed.code).toBe(0);
    expect(listed.stderr).toContain(
      `lease ${lease.id} was stopped before its time, not by this program (by a request with its credential, e.g. a curl; or by the node, when its sandbox ended: out of memory, say); its refund was ${stop.body.refunded} sat; it had been redeemed elsewhere first (by whoever stopped it)\n`,
    );
    expect(listed.stderr).not.toContain('into the wallet');
    expect(listed.stdout).toMatch(new RegExp(`${lease.id}\\s+stopped\\s+small`));
    // Nothing came in, and it is not asked about again.
    const balance = await runCli(['wallet', 'balance'], me);
    expect(balance.stdout).toBe('140 sat\n');
    expect(balance.stderr).toBe('');
  });
});
