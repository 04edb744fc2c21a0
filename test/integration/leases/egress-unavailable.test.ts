import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allUnspent,
  aroundDriver,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokens,
} from '../../helpers/lease-node.js';
import { crunSkipReason } from '../drivers/crun-target.js';

/**
 * On a host whose driver cannot start egress sandboxes (no pasta, no nftables), the egress offer
 * shows nothing available and a request for it is refused before its payment is touched: the
 * renter's token stays unspent (it used to be taken, the start to fail, and a refund to come back
 * less its input fees). Plain offers sell as before.
 */
describe.skipIf(crunSkipReason)('egress offers on a host that cannot run egress', () => {
  let t: LeaseTestNode;

  beforeAll(async () => {
    t = await startLeaseNode({}, undefined, {
      wrapDriver: (real) =>
        aroundDriver(real, { capacity: async () => ({ ...(await real.capacity()), egress: false }) }),
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('shows the egress offer unavailable and refuses it before payment, paid or not; plain offers still rent', async () => {
    const offers = (await (await fetch(`${t.url}/v1/offers`)).json()) as {
      offers: Array<{ id: string; network: string; available: number }>;
    };
    expect(offers.offers.find((o) => o.id === 'online')).toMatchObject({ network: 'egress', available: 0 });
    expect(offers.offers.find((o) => o.id === 'small')?.available).toBeGreaterThan(0);

    // Unpaid: no payment is asked for what could not start (a 402 used to come first, its payment
    // then refused).
    const unpaid = await postJson(`${t.url}/v1/leases`, { offer: 'online', seconds: 60, image: 'busybox' });
    expect(unpaid.status).toBe(503);
    expect(unpaid.body).toMatchObject({ error: 'no_capacity', message: expect.stringMatching(/network/) });
    expect(unpaid.headers.get('x-cashu')).toBeNull();
    const plainUnpaid = await postJson(`${t.url}/v1/leases`, {
      offer: 'small',
      seconds: 60,
      image: 'busybox',
    });
    expect(plainUnpaid.status).toBe(402);

    const { wallet, tokens: pool } = await tokens(t.mintUrl, 2, 80);
    const refused = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'online', seconds: 60, image: 'busybox' },
      { 'x-cashu': pool[0]!.token },
    );
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ error: 'no_capacity', message: expect.stringMatching(/network/) });
    expect(await allUnspent(wallet, pool[0]!.send)).toBe(true);

    const plain = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'small', seconds: 60, image: 'busybox' },
      { 'x-cashu': pool[1]!.token },
    );
    expect(plain.status).toBe(201);
  });
});
