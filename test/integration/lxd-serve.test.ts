import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServedNode, serveNode } from '../helpers/cli.js';
import { type LxdDaemon, lxdSkipReason, startLxd } from './drivers/lxd-target.js';

if (lxdSkipReason) {
  describe.skip(`alacarte serve on LXD: skipped, ${lxdSkipReason}`, () => {
    it('runs only as root with lxd', () => {});
  });
} else {
  describe('alacarte serve with ALACARTE_DRIVER=lxd', () => {
    let daemon: LxdDaemon;
    let node: ServedNode;
    beforeAll(async () => {
      daemon = await startLxd();
      node = await serveNode({ env: { ALACARTE_DRIVER: 'lxd', LXD_DIR: join(daemon.base, 'state') } });
    }, 120_000);
    afterAll(async () => {
      await node?.stop();
      await daemon?.stop();
    });

    it('says in its banner that LXD runs the sandboxes, and offers no egress', async () => {
      expect(node.output()).toContain(`driver: lxd (unix socket ${daemon.socketPath}`);
      const offers = (await (await fetch(`${node.url}/v1/offers`)).json()) as {
        offers: Array<{ network: string; available: number }>;
      };
      for (const o of offers.offers) {
        if (o.network === 'egress') expect(o.available).toBe(0);
        else expect(o.available).toBeGreaterThan(0);
      }
    });
  });
}
