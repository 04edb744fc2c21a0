import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LxdClient } from '../../../src/drivers/lxd/lxd-client.js';
import { LxdDriver } from '../../../src/drivers/lxd/lxd-driver.js';
import { freePort } from '../../helpers/lease-node.js';
import { newLeaseId, sh, TEST_LIMITS } from './compute-driver.contract.js';
import { clientCertificate, type LxdDaemon, lxdSkipReason, startLxd } from './lxd-target.js';

const skipReason =
  lxdSkipReason ??
  (spawnSync('openssl', ['version']).status === 0 ? undefined : 'no openssl to make a client certificate');

if (skipReason) {
  describe.skip(`LXD over TLS: skipped, ${skipReason}`, () => {
    it('runs only as root with lxd and openssl', () => {});
  });
} else {
  describe('the LXD driver on a remote member: TLS with a trusted client certificate, server pinned', () => {
    let daemon: LxdDaemon;
    let url: string;
    let serverCert: string;
    let trusted: { cert: string; key: string; certPath: string };

    beforeAll(async () => {
      daemon = await startLxd();
      const env = { ...process.env, LXD_DIR: join(daemon.base, 'state') };
      const port = await freePort();
      const set = spawnSync('lxc', ['config', 'set', 'core.https_address', `127.0.0.1:${port}`], {
        env,
        encoding: 'utf8',
      });
      if (set.status !== 0) throw new Error(set.stderr);
      url = `https://127.0.0.1:${port}`;
      serverCert = readFileSync(join(daemon.base, 'state', 'server.crt'), 'utf8');
      trusted = clientCertificate(daemon.base, 'alacarte');
      const trust = spawnSync('lxc', ['config', 'trust', 'add', trusted.certPath], { env, encoding: 'utf8' });
      if (trust.status !== 0) throw new Error(trust.stderr);
    }, 120_000);
    afterAll(async () => {
      await daemon?.stop();
    });

    it('starts, execs in and stops an instance over HTTPS and its websockets', async () => {
      const client = new LxdClient({ url, clientCert: trusted.cert, clientKey: trusted.key, serverCert });
      const driver = await LxdDriver.create({
        client,
        imagesDir: join(daemon.base, 'images'),
        runtimeDir: join(daemon.base, 'sandboxes'),
      });
      try {
        expect((await driver.capacity()).sandboxes).toBeGreaterThan(0);
        const h = await driver.start(
          { leaseId: newLeaseId(), image: 'busybox' },
          TEST_LIMITS,
          new Date(Date.now() + 60_000),
        );
        expect(await sh(driver, h, 'echo over tls; cat /run/alacarte/lease.json')).toMatchObject({
          code: 0,
          out: expect.stringContaining(`over tls\n{"id":"${h.leaseId}"`),
        });
        await driver.stop(h);
        expect(await driver.isRunning(h)).toBe(false);
      } finally {
        await driver.close();
      }
    });

    it('refuses a server whose certificate is not the pinned one, and LXD refuses an untrusted client', async () => {
      const other = clientCertificate(daemon.base, 'stranger');
      const wrongPin = new LxdClient({
        url,
        clientCert: trusted.cert,
        clientKey: trusted.key,
        serverCert: other.cert,
      });
      await expect(wrongPin.get('/1.0/instances', z.unknown())).rejects.toThrow();
      const untrusted = new LxdClient({ url, clientCert: other.cert, clientKey: other.key, serverCert });
      await expect(untrusted.get('/1.0/instances', z.unknown())).rejects.toThrow(
        /forbidden|not authorized|403/i,
      );
    });
  });
}
