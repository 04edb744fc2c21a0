import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LeaseTestNode, postJson, startLeaseNode, tokens } from '../../helpers/lease-node.js';
import { crunSkipReason, findOnPath } from '../drivers/crun-target.js';
import { makeTestInternet, type TestInternet } from '../drivers/test-internet.js';

/**
 * The default configuration's egress offer, bought through the API: its lease reaches the test's
 * internet and resolves through the configured resolver, while a lease of a plain offer on the
 * same node reaches nothing. The refusals themselves are tested at the driver
 * (test/integration/drivers/egress.test.ts).
 */
const skipReason =
  crunSkipReason ??
  (['pasta', 'nft', 'dnsmasq', 'setpriv'].find((p) => !findOnPath(p))
    ? 'needs pasta (passt), nft (nftables), dnsmasq (dnsmasq-base) and setpriv'
    : undefined);

describe.skipIf(skipReason !== undefined)('leases of the default egress offer', () => {
  let inet: TestInternet;
  let node: LeaseTestNode;

  beforeAll(async () => {
    inet = await makeTestInternet(1024);
    node = await startLeaseNode({ egress: { dns: inet.dns } });
  });
  afterAll(async () => {
    await node?.close().catch(() => {});
    await inet?.dispose();
  });

  async function rent(offer: string, token: string) {
    const body = { offer, seconds: 120, image: 'busybox' };
    const created = await postJson(`${node.url}/v1/leases`, body, { 'x-cashu': token });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const auth = { authorization: `Bearer ${String(created.body.token)}` };
    return async (script: string) => {
      const r = await postJson(
        `${node.url}/v1/leases/${String(created.body.id)}/exec`,
        { command: ['sh', '-c', script], timeout_seconds: 20 },
        auth,
      );
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return String(r.body.stdout);
    };
  }

  it('reaches the internet on the "online" offer and nothing on "small"', async () => {
    const offers = (await (await fetch(`${node.url}/v1/offers`)).json()) as { offers: unknown[] };
    expect(offers.offers).toContainEqual(expect.objectContaining({ id: 'online', network: 'egress' }));
    const { tokens: pool } = await tokens(node.mintUrl, 2, 8);
    const fetchHello = `mkfifo /tmp/in; exec 3<>/tmp/in; nc -w 3 ${inet.server} 80 <&3; nslookup internet.test`;
    const egress = await rent('online', pool[0]!.token);
    const out = await egress(fetchHello);
    expect(out).toContain('hello from the internet');
    expect(out).toMatch(new RegExp(`Address:\\s+${inet.server.replace(/\./g, '\\.')}`));
    const plain = await rent('small', pool[1]!.token);
    const none = await plain(fetchHello);
    expect(none).not.toContain('hello from the internet');
    expect(none).not.toContain(inet.server);
  });
});
