import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LeaseTestNode, startLeaseNode } from '../../helpers/lease-node.js';

/**
 * Issue 9, section 3 (audit): /metrics must not grow with what clients send. Request metrics are
 * labelled by route pattern, method and status only, so random paths, lease ids and methods add
 * no series.
 */
let t: LeaseTestNode;
beforeAll(async () => {
  t = await startLeaseNode();
});
afterAll(async () => {
  await t?.close();
});

async function seriesCount(): Promise<{ count: number; text: string }> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const count = text
    .split('\n')
    .filter((l) => l.startsWith('alacarte_http_request_duration_seconds_count')).length;
  return { count, text };
}

describe('metrics label cardinality', () => {
  it('adds no series for random paths, lease ids or methods', async () => {
    const warm = async () => {
      for (const method of ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'PROPFIND']) {
        await fetch(`${t.url}/v1/${randomBytes(6).toString('hex')}`, { method }).catch(() => undefined);
        await fetch(`${t.url}/v1/leases/lse_${randomBytes(8).toString('hex')}`, { method }).catch(
          () => undefined,
        );
      }
    };
    await warm();
    const before = await seriesCount();
    const marker = randomBytes(6).toString('hex');
    for (let i = 0; i < 50; i++) {
      await fetch(`${t.url}/v1/${marker}-${i}?x=${randomBytes(4).toString('hex')}`);
      await fetch(`${t.url}/v1/leases/lse_${marker}${i}`);
      await fetch(`${t.url}/mint/v1/keys/${marker}${i}`);
    }
    await warm();
    const after = await seriesCount();
    expect(after.text).not.toContain(marker);
    // The mint's keyset route and the 404 route pattern may add a series each, nothing per request.
    expect(after.count - before.count).toBeLessThanOrEqual(4);
  });
});
