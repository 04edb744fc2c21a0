import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LeaseTestNode, postJson, startLeaseNode, tokens } from '../../helpers/lease-node.js';
import {
  createDatabase,
  type PostgresServer,
  postgresUnavailable,
  startPostgres,
} from '../../helpers/postgres.js';
import { crunSkipReason } from '../drivers/crun-target.js';

/**
 * A node whose PostgreSQL goes away (a newcomer stopped the server under a running node): its
 * /healthz said ok while a paid create answered `500 internal`. Now a load balancer's health check
 * sees 503, and requests that need the store get `503 store_unavailable` with Retry-After: the
 * server's absence, not a bug. (Nothing was taken: the mint's spends and the lease are one
 * transaction of that same database.) The node's mint answers its wallets 503 too.
 */
describe.skipIf(crunSkipReason ?? postgresUnavailable())('a node whose database goes away', () => {
  let server: PostgresServer;
  let t: LeaseTestNode;

  beforeAll(async () => {
    server = await startPostgres();
    t = await startLeaseNode({ store: { url: await createDatabase(server.baseUrl, 'outage') } });
  }, 120_000);
  afterAll(async () => {
    // The store is gone: the node's close reports it; its sandboxes and driver still go.
    await t?.close().catch(() => {});
    await server?.stop();
  });

  it('answers 503 on /healthz and store_unavailable on a paid create, then on any lease call', async () => {
    expect(await (await fetch(`${t.url}/healthz`)).json()).toEqual({ ok: true });
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 2, 64);
    await server.stop();

    const health = await fetch(`${t.url}/healthz`);
    expect(health.status).toBe(503);
    expect(health.headers.get('retry-after')).toBe('5');
    expect(await health.json()).toMatchObject({ ok: false, error: 'store_unavailable' });

    const create = await postJson(
      `${t.url}/v1/leases`,
      { offer: 'small', seconds: 600, image: 'busybox' },
      { 'x-cashu': pool[0]?.token ?? '' },
    );
    expect(create.status).toBe(503);
    expect(create.headers.get('retry-after')).toBe('5');
    expect(create.body).toEqual({
      error: 'store_unavailable',
      message: "the node's database does not answer right now; try again shortly",
    });
    const lease = await fetch(`${t.url}/v1/leases/lse_01ku5m9uo8xzjycluj7tubejks`, {
      headers: { authorization: 'Bearer x' },
    });
    expect(lease.status).toBe(503);

    // The node's own mint likewise (its swap commits through a connection of its own): a wallet's
    // swap and state check are told to come back, not "internal error".
    const swap = await wallet.receive(pool[1]?.token ?? '').catch((err: unknown) => err);
    expect(swap).toMatchObject({ status: 503, message: expect.stringMatching(/database does not answer/) });
    const states = await wallet.checkProofsStates(pool[1]?.send ?? []).catch((err: unknown) => err);
    expect(states).toMatchObject({ status: 503 });
    const raw = await fetch(`${t.mintUrl}/v1/mint/quote/bolt11`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ unit: 'sat', amount: 10 }),
    });
    expect(raw.status).toBe(503);
    expect(raw.headers.get('retry-after')).toBe('5');
  });
});
