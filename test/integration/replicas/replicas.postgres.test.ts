import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../../helpers/cli.js';
import { allUnspent, expectBalanced, ledgerOf, postJson, tokens } from '../../helpers/lease-node.js';
import { NodeProcess, QUARTER_OFFER, startReplicas } from '../../helpers/node-process.js';
import { testDatabase, testPostgresUnavailable } from '../../helpers/postgres.js';

/**
 * Several `alacarte serve` processes (the built CLI) on one PostgreSQL store, as behind a load
 * balancer: one public URL, the node key and the mint seed copied from the first replica's data
 * directory, each with its own sandboxes. The same token sent to all of them at once buys one
 * lease.
 */
const OPERATOR = 'operator-token-for-replica-tests-0123';
const REPLICAS = 3;
const REQUESTS = 50;
const body = { offer: 'quarter', seconds: 7200, image: 'busybox' }; // 60 sat/h → 120 sat
const unavailable = testPostgresUnavailable();

const replicas: NodeProcess[] = [];
let urls: string[] = [];
let storeUrl = '';

beforeAll(async () => {
  if (unavailable !== undefined) return;
  storeUrl = await testDatabase();
  await startReplicas({
    into: replicas,
    prefix: 'replica',
    count: REPLICAS,
    storeUrl,
    config: {
      offers: [QUARTER_OFFER],
    },
    env: { ALACARTE_OPERATOR_TOKEN: OPERATOR },
  });
  // Each replica by its own address (the banner shows the shared public URL).
  urls = replicas.map((r) => r.localUrl);
});

afterAll(async () => {
  for (const replica of replicas) await replica.cleanup();
});

describe.skipIf(unavailable !== undefined)(
  `${REPLICAS} replicas on one PostgreSQL ${unavailable ?? ''}`,
  () => {
    it(`sell one lease for one token sent ${REQUESTS} times across them at once`, async () => {
      expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
      const { wallet, tokens: pool } = await tokens(`${urls[0]}/mint`, 2, 128);
      const token = pool[0]!;
      const answers = await Promise.all(
        Array.from({ length: REQUESTS }, (_, i) =>
          postJson(`${urls[i % REPLICAS]}/v1/leases`, body, { 'x-cashu': token.token }),
        ),
      );
      // The lease (201, or 200 for a replay of the same payment), or a refusal with a stable code.
      const created = answers.filter((a) => a.status === 201 || a.status === 200);
      for (const a of answers) {
        if (a.status === 201 || a.status === 200) continue;
        expect(a.status, JSON.stringify(a.body)).toBeGreaterThanOrEqual(400);
        expect(a.status, JSON.stringify(a.body)).toBeLessThan(500);
        expect(JSON.stringify(a.body)).toMatch(/"error":"[a-z_]+"/);
      }
      expect(answers.filter((a) => a.status === 201).length).toBeGreaterThanOrEqual(1);
      expect(new Set(created.map((a) => a.body.id)).size).toBe(1);

      const client = new pg.Client({ connectionString: storeUrl });
      await client.connect();
      try {
        const leases = await client.query('select id, state from leases');
        expect(leases.rows).toEqual([{ id: created[0]!.body.id, state: 'running' }]);
        const payments = await client.query('select count(*)::int as n from payments');
        expect(payments.rows[0].n).toBe(1);
      } finally {
        await client.end();
      }
      expect(await allUnspent(wallet, token.send)).toBe(false);
      // The other token was not touched, and every replica reads the same balanced books.
      expect(await allUnspent(wallet, pool[1]!.send)).toBe(true);
      for (const url of urls) {
        const books = await ledgerOf(url, OPERATOR);
        expect(expectBalanced(books)).toEqual([]);
        expect(books.received).toBe(120);
        expect(books.leases.running).toBe(1);
      }
    });

    it('refuses to start a replica whose node.key was not copied from the first', async () => {
      const stranger = new NodeProcess({
        prefix: 'replica-stranger',
        config: { offers: [QUARTER_OFFER] },
        env: { ALACARTE_STORE_URL: storeUrl, ALACARTE_OPERATOR_TOKEN: OPERATOR },
      });
      replicas.push(stranger); // cleaned up with the others
      // Its mint seed copied (as a newcomer did), not its node key.
      copyFileSync(join(replicas[0]!.dataDir, 'mint.seed'), join(stranger.dataDir, 'mint.seed'));
      const started = await stranger.start().then(
        () => 'listening',
        (err: unknown) => String(err),
      );
      expect(started).toMatch(/node\.key is not the node key the other nodes of this store use/);
      expect(started).toMatch(/copied as files from its data directory/);
    });
  },
);
