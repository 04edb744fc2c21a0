import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_OFFERS, offerToJson } from '../../../src/core/offers.js';
import { type LeaseTestNode, startLeaseNode } from '../../helpers/lease-node.js';
import { testDatabase, testPostgresUnavailable } from '../../helpers/postgres.js';

/**
 * The reaper with no leader: three nodes on one PostgreSQL store each run their own, and every
 * lease that expires is ended by exactly one of them (FOR UPDATE SKIP LOCKED, then the ending's
 * own state check). Counted where a double end would show: each node's
 * `alacarte_leases_ended_total{state="expired"}`, added up.
 */
const REPLICAS = 3;
const LEASES = 100;
const unavailable = testPostgresUnavailable();
let nodes: LeaseTestNode[] = [];

beforeAll(async () => {
  if (unavailable !== undefined) return;
  const url = await testDatabase();
  const first = await startLeaseNode({ store: { url } });
  nodes = [first];
  for (let i = 1; i < REPLICAS; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-replica-'));
    for (const file of ['node.key', 'mint.seed']) copyFileSync(join(first.dataDir, file), join(dir, file));
    nodes.push(await startLeaseNode({ store: { url } }, dir));
  }
});

afterAll(async () => {
  for (const node of nodes) await node.close();
});

async function expiredCount(node: LeaseTestNode): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const m = /^alacarte_leases_ended_total\{state="expired"\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

describe.skipIf(unavailable !== undefined)(`the reaper on ${REPLICAS} replicas ${unavailable ?? ''}`, () => {
  it(`ends each of ${LEASES} leases expiring together exactly once`, async () => {
    const db = nodes[0]!.node.db;
    const expiresAt = Date.now() + 1500;
    // Rows only (no sandboxes): what is under test is who ends them in the store.
    const rows = Array.from({ length: LEASES }, (_, i) => ({
      id: `lse_reaper${String(i).padStart(4, '0')}`,
      offer_id: DEFAULT_OFFERS[0]!.id,
      offer_json: JSON.stringify(offerToJson(DEFAULT_OFFERS[0]!)),
      image: 'busybox',
      state: 'running' as const,
      created_at: Date.now(),
      started_at: Date.now(),
      expires_at: expiresAt,
      ended_at: null,
      held: 0,
      refunded: 0,
      unit: 'sat',
      credential_hash: 'x'.repeat(64),
      fail_reason: null,
      ports_json: '{}',
    }));
    await db.insertInto('leases').values(rows).execute();
    const give = Date.now() + 30_000;
    for (;;) {
      const left = await db.selectFrom('leases').select('id').where('state', '=', 'running').execute();
      if (left.length === 0) break;
      if (Date.now() > give) throw new Error(`${left.length} leases still running`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const counts = await Promise.all(nodes.map(expiredCount));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(LEASES);
    const expired = await db.selectFrom('leases').select('id').where('state', '=', 'expired').execute();
    expect(expired).toHaveLength(LEASES);
  });
});
