import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getDecodedToken, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../../../src/config.js';
import { shiftMark } from '../../../src/drivers/crun/preflight.js';
import { LxdClient } from '../../../src/drivers/lxd/lxd-client.js';
import { LxdDriver } from '../../../src/drivers/lxd/lxd-driver.js';
import { ensureLxdImage, lxdImageAlias } from '../../../src/drivers/lxd/lxd-image.js';
import { AlacarteNode } from '../../../src/node.js';
import { CLI } from '../../helpers/cli.js';
import {
  expectBalanced,
  fundedWallet,
  ledgerOf,
  postJson,
  sumOf,
  tokenOf,
} from '../../helpers/lease-node.js';
import { runProcess } from '../../helpers/run-process.js';
import { tarMembers, tarOf } from '../../helpers/tar.js';
import { type LxdDaemon, lxdSkipReason, startLxd } from '../drivers/lxd-target.js';

const OPERATOR = 'operator-token-for-tests-0123456789';

if (lxdSkipReason) {
  describe.skip(`paid lease on LXD: skipped, ${lxdSkipReason}`, () => {
    it('runs only as root with lxd', () => {});
  });
} else {
  describe('a paid lease end to end on the LXD driver', () => {
    let daemon: LxdDaemon;
    let driver: LxdDriver;
    let node: AlacarteNode;
    let url: string;
    let mintUrl: string;
    let dataDir: string;

    beforeAll(async () => {
      daemon = await startLxd();
      dataDir = mkdtempSync(join(tmpdir(), 'alacarte-lxd-lease-'));
      const config = loadConfig({
        flags: { port: 0, dataDir, logLevel: 'silent', ssh: { enabled: false }, operatorToken: OPERATOR },
      });
      driver = await LxdDriver.create({
        client: new LxdClient({ socketPath: daemon.socketPath }),
        imagesDir: join(dataDir, 'images'),
        runtimeDir: join(dataDir, 'lxd-sandboxes'),
      });
      node = await AlacarteNode.create(config, { driver, images: ['busybox'] });
      ({ url, mintUrl } = await node.listen());
    }, 120_000);

    afterAll(async () => {
      if (driver) for (const s of await driver.list().catch(() => [])) await driver.stop(s);
      await node?.close();
      await driver?.close();
      await daemon?.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    /** A two-hour busybox lease of the small offer, paid 120 sat: its 201 answer. */
    async function rentSmall(): Promise<Record<string, unknown>> {
      const { wallet, proofs } = await fundedWallet(mintUrl, 200);
      const { token } = await tokenOf(wallet, mintUrl, proofs, 120);
      const created = await postJson(
        `${url}/v1/leases`,
        { offer: 'small', seconds: 7200, image: 'busybox' },
        { 'x-cashu': token },
      );
      expect(created.status).toBe(201);
      return created.body;
    }

    it('offers no egress (no NIC) and rents, runs, stops and refunds a busybox lease', async () => {
      const offers = await fetch(`${url}/v1/offers`).then(
        (r) => r.json() as Promise<{ offers: Array<{ id: string; network: string; available: number }> }>,
      );
      const egress = offers.offers.filter((o) => o.network === 'egress');
      expect(egress.length).toBeGreaterThan(0);
      for (const o of egress) expect(o.available).toBe(0);
      expect(offers.offers.find((o) => o.id === 'small')?.available).toBeGreaterThan(0);
      // Nothing is asked for it: no 402 for what cannot start here.
      const unpaid = await postJson(`${url}/v1/leases`, {
        offer: egress[0]!.id,
        seconds: 60,
        image: 'busybox',
      });
      expect([unpaid.status, unpaid.body.error]).toEqual([503, 'no_capacity']);

      const lease = await rentSmall();
      expect(lease).toMatchObject({ state: 'running', offer: 'small', image: 'busybox', paid: 120 });
      const auth = { authorization: `Bearer ${lease.token}` };

      // It runs as an LXD instance of this node's.
      const listed = await driver.list();
      expect(listed.map((s) => s.leaseId)).toContain(lease.id);

      const exec = await postJson(
        `${url}/v1/leases/${lease.id}/exec`,
        { command: ['sh', '-c', 'echo hi from lxd; cat /run/alacarte/lease.json; ls /sys/class/net'] },
        auth,
      );
      expect(exec.status).toBe(200);
      expect(exec.body.exit_code).toBe(0);
      expect(String(exec.body.stdout)).toBe(
        `hi from lxd\n${JSON.stringify({ id: lease.id, expires_at: lease.expires_at })}\nlo\n`,
      );

      const stop = await postJson(`${url}/v1/leases/${lease.id}`, undefined, auth, 'DELETE');
      expect(stop.status).toBe(200);
      expect(stop.body.state).toBe('stopped');
      // Two hours paid, seconds used: nearly all of it comes back.
      expect(Number(stop.body.refunded)).toBeGreaterThanOrEqual(118);
      const other = new Wallet(mintUrl, { unit: 'sat' });
      await other.loadMint();
      const refund = getDecodedToken(
        stop.body.refund as string,
        other.keyChain.getKeysets().map((k) => k.id),
      );
      expect(sumOf(refund.proofs)).toBe(stop.body.refunded);
      expect(sumOf(await other.receive(stop.body.refund as string))).toBe(stop.body.refunded);

      // The instance is gone from LXD, and the lease refuses work.
      expect((await driver.list()).map((s) => s.leaseId)).not.toContain(lease.id);
      const gone = await postJson(`${url}/v1/leases/${lease.id}/exec`, { command: ['true'] }, auth);
      expect(gone.status).toBe(409);
      expect(gone.body.error).toBe('lease_not_running');

      expect(expectBalanced(await ledgerOf(url, OPERATOR))).toEqual([]);
    });

    it('`alacarte image rm` refuses the image of a running lease, naming it (the store knows LXD leases)', async () => {
      expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
      const lease = await rentSmall();
      const rm = await runProcess(process.execPath, [CLI, 'image', 'rm', 'busybox', '--data', dataDir]);
      expect(rm.code, rm.stderr).toBe(1);
      expect(rm.stderr).toContain(`image busybox is in use by 1 lease(s): ${String(lease.id)}`);
      expect(existsSync(join(dataDir, 'images', 'busybox'))).toBe(true);
      const auth = { authorization: `Bearer ${String(lease.token)}` };
      expect((await postJson(`${url}/v1/leases/${String(lease.id)}`, undefined, auth, 'DELETE')).status).toBe(
        200,
      );
    });

    it("`alacarte image rm` on a node of the LXD driver deletes LXD's copy of the image too", async () => {
      const images = join(dataDir, 'images');
      const client = new LxdClient({ socketPath: daemon.socketPath });
      await runProcess('cp', ['-a', join(images, 'busybox'), join(images, 'spare')]);
      if (existsSync(shiftMark(join(images, 'busybox'))))
        await runProcess('cp', ['-a', shiftMark(join(images, 'busybox')), shiftMark(join(images, 'spare'))]);
      const fingerprint = await ensureLxdImage(client, images, 'spare');
      const alias = lxdImageAlias(images, 'spare');
      const listed = async () =>
        JSON.stringify((await client.call('GET', '/1.0/images', undefined)).metadata);
      expect(await listed()).toContain(fingerprint);

      const configFile = join(dataDir, 'lxd-config.json');
      writeFileSync(configFile, JSON.stringify({ driver: { kind: 'lxd', socket: daemon.socketPath } }));
      const rm = await runProcess(process.execPath, [
        CLI,
        'image',
        'rm',
        'spare',
        '--data',
        dataDir,
        '--config',
        configFile,
      ]);
      expect(rm.code, rm.stderr).toBe(0);
      expect(rm.stdout).toBe(`removed image spare\nremoved its copy in LXD (${alias})\n`);
      expect(existsSync(join(images, 'spare'))).toBe(false);
      expect(await listed()).not.toContain(fingerprint);
      await expect(client.get(`/1.0/images/aliases/${alias}`, z.unknown())).rejects.toMatchObject({
        status: 404,
      });
    });

    it('writes and reads files and directories over HTTP, more transfers than run at once', async () => {
      const lease = await rentSmall();
      const auth = { authorization: `Bearer ${lease.token}` };
      const files = (path: string) => `${url}/v1/leases/${lease.id}/files?path=${encodeURIComponent(path)}`;
      const within = <T>(p: Promise<T>) =>
        Promise.race([p, new Promise<'no answer'>((r) => setTimeout(() => r('no answer'), 15_000))]);

      // Past the 4 transfers a lease runs at once: each must end for the next to start.
      for (let i = 0; i < 6; i++) {
        const put = await within(
          fetch(files(`/root/f${i}.txt`), { method: 'PUT', headers: auth, body: `file ${i}\n` }),
        );
        expect(put === 'no answer' ? put : put.status).toBe(201);
        const got = await within(fetch(files(`/root/f${i}.txt`), { headers: auth }).then((r) => r.text()));
        expect(got).toBe(`file ${i}\n`);
      }
      const archive = tarOf([
        { name: 'a/', type: '5' },
        { name: 'a/one', content: 'one\n' },
      ]);
      const up = await within(
        fetch(files('/srv/tree'), {
          method: 'PUT',
          headers: { ...auth, 'content-type': 'application/x-tar' },
          body: archive,
        }),
      );
      expect(up === 'no answer' ? up : up.status).toBe(201);
      const down = await within(fetch(files('/srv/tree'), { headers: auth }));
      if (down === 'no answer') throw new Error('the directory download got no answer');
      expect(down.headers.get('content-type')).toBe('application/x-tar');
      const members = tarMembers(Buffer.from(await down.arrayBuffer()));
      expect(members.find((m) => m.name.endsWith('a/one'))?.content.toString()).toBe('one\n');

      expect((await postJson(`${url}/v1/leases/${lease.id}`, undefined, auth, 'DELETE')).status).toBe(200);
    });
  });
}
