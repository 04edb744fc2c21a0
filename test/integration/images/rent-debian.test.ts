import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../../src/drivers/crun/image-store.js';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../../helpers/lease-node.js';
import { debianImagesDir } from '../../helpers/test-images.js';
import { crunSkipReason, findOnPath } from '../drivers/crun-target.js';

const skipReason =
  crunSkipReason ?? (findOnPath('mmdebstrap') ? undefined : 'mmdebstrap not installed (scripts/setup.sh)');

if (skipReason) {
  describe.skip(`renting debian: skipped, ${skipReason}`, () => {
    it('needs root, crun and mmdebstrap', () => {});
  });
} else {
  describe('renting the debian image over HTTP, as a renter would', () => {
    let t: LeaseTestNode;
    let dataDir: string;

    beforeAll(async () => {
      const imagesDir = await debianImagesDir();
      dataDir = mkdtempSync(join(tmpdir(), 'alacarte-debian-node-'));
      chmodSync(dataDir, 0o711);
      mkdirSync(join(dataDir, 'sandboxes'));
      // As `alacarte serve` does: the offered images are the images directory's.
      const store = new ImageStore(imagesDir, join(dataDir, 'sandboxes'));
      t = await startLeaseNode({}, dataDir, {
        images: () => store.list(),
        driver: { imagesDir, warmLayers: 1 },
      });
    }, 600_000);

    afterAll(async () => {
      await t?.close();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    it('offers debian beside busybox with a description and size, and runs python3 in a paid lease', async () => {
      const offers = (await (await fetch(`${t.url}/v1/offers`)).json()) as {
        images: string[];
        image_details: { name: string; description: string; size_mib: number }[];
      };
      expect(offers.images).toEqual(expect.arrayContaining(['busybox', 'debian']));
      const debian = offers.image_details.find((i) => i.name === 'debian');
      expect(debian?.description).toMatch(/^Debian 12 with python3, pip/);
      expect(debian?.size_mib).toBeGreaterThan(100);
      const quote = (await (await fetch(`${t.url}/v1/quote?offer=small&seconds=120`)).json()) as {
        amount: number;
      };
      const { wallet, proofs } = await fundedWallet(t.mintUrl, quote.amount);
      const { token } = await tokenOf(wallet, t.mintUrl, proofs, quote.amount);
      const lease = await postJson(
        `${t.url}/v1/leases`,
        { offer: 'small', seconds: 120, image: 'debian' },
        { 'x-cashu': token },
      );
      expect(lease.status).toBe(201);
      expect(lease.body.image).toBe('debian');
      const auth = { authorization: `Bearer ${lease.body.token}` };
      const exec = await postJson(
        `${t.url}/v1/leases/${lease.body.id}/exec`,
        { command: ['python3', '-c', 'import json, os; print(6*7, os.getcwd(), os.environ["LANG"])'] },
        auth,
      );
      expect(exec.body).toEqual({ exit_code: 0, stdout: '42 /root C.UTF-8\n', stderr: '', truncated: false });
      expect((await postJson(`${t.url}/v1/leases/${lease.body.id}`, undefined, auth, 'DELETE')).status).toBe(
        200,
      );
    });
  });
}
