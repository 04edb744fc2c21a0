import { availableParallelism } from 'node:os';
import type { Proof, Wallet } from '@cashu/cashu-ts';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  allSpent,
  allUnspent,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokens,
} from '../../helpers/lease-node.js';

/**
 * Issue 9, part 6: everything that a driver (or any later step) would refuse is refused before
 * the payment is touched — 400 invalid_request with the token still unspent at the mint (checked
 * with a cashu-ts wallet), and nothing recorded. Each case below was, on the code before, paid for
 * and then refunded as `503 start_failed` (input fees lost), or accepted and run altered.
 *
 * The node sells 'small' (0.1 vCPU) and 'tenth' (0.1 vCPU, for the capacity check) on a host cut
 * to 0.35 vCPU per core, offers an image whose name no driver accepts, and has a clock the tests
 * may move (to the end of year 9999).
 */
const cpus = availableParallelism();
let t: LeaseTestNode;
let now: number | undefined;
const offer = (id: string, memory: number, disk: number) => ({
  id,
  vcpu: 0.1,
  memory_mib: memory,
  pids: 64,
  disk_mib: disk,
  price: { amount_per_hour: 60, unit: 'sat' as const },
  min_seconds: 60,
  max_seconds: 30 * 24 * 3600,
});

beforeAll(async () => {
  t = await startLeaseNode({ offers: [offer('small', 64, 16), offer('tenth', 16, 1)] }, undefined, {
    images: ['busybox', 'Bad_Image'],
    clock: () => new Date(now ?? Date.now()),
    driver: { overcommit: { cpuRatio: 0.35 } },
  });
});
afterEach(async () => {
  now = undefined;
  for (const s of await t.driver.list()) await t.driver.stop(s);
});
afterAll(async () => {
  await t?.close();
});

const leases = () => `${t.url}/v1/leases`;
const small = { offer: 'small', seconds: 3600, image: 'busybox' };

async function leaseCount(): Promise<number> {
  const row = await t.node.db
    .selectFrom('leases')
    .select(sql<number>`count(*)`.as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Sends `body` paid with a fresh token; expects 400 invalid_request and the token unspent. */
async function expectRefusedUnpaid(
  name: string,
  body: unknown,
  pay: { wallet: Wallet; token: string; send: Proof[] },
): Promise<void> {
  const before = await leaseCount();
  const res = await postJson(leases(), body, { 'x-cashu': pay.token });
  expect(res.status, name).toBe(400);
  expect(res.body, name).toMatchObject({ error: 'invalid_request', message: expect.any(String) });
  expect(await allUnspent(pay.wallet, pay.send), name).toBe(true);
  expect(await leaseCount(), name).toBe(before);
}

describe('a lease request the driver would refuse is refused before payment', () => {
  const long = 'x'.repeat(4000);
  const euros = '€'.repeat(4000); // 12 000 bytes in UTF-8
  const cases: Array<{ name: string; body: Record<string, unknown> }> = [
    { name: 'NUL in the command', body: { ...small, command: ['sh', '-c', 'sleep 9\u0000'] } },
    { name: 'NUL in an env value', body: { ...small, env: { A: 'x\u0000y' } } },
    // 20 parts of 4000 characters: within the old HTTP schema, beyond the driver's 64 KiB.
    { name: 'command over 64 KiB in all', body: { ...small, command: Array(20).fill(long) } },
    { name: 'command over 64 KiB in UTF-8 bytes', body: { ...small, command: Array(6).fill(euros) } },
    { name: 'lone surrogate in the command', body: { ...small, command: ['echo', 'a\ud800b'] } },
    { name: 'lone surrogate in an env value', body: { ...small, env: { A: '\udc00' } } },
    { name: 'env value over 8 KiB in bytes', body: { ...small, env: { A: euros } } },
    {
      name: 'env over 64 KiB in all',
      body: { ...small, env: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`V${i}`, long])) },
    },
    { name: 'env name __proto__ (would be dropped)', body: { ...small, env: { ['__proto__']: 'x' } } },
    { name: 'an offered image whose name no driver accepts', body: { ...small, image: 'Bad_Image' } },
  ];

  it.each(cases)('$name', async ({ name, body }) => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 1, 64);
    await expectRefusedUnpaid(name, body, { wallet, ...pool[0]! });
  });

  it('the image the driver cannot take is not offered either', async () => {
    const offers = (await (await fetch(`${t.url}/v1/offers`)).json()) as { images: string[] };
    expect(offers.images).toEqual(['busybox']);
  });

  it('what the shared schema allows at its limits is paid and started', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 1, 64);
    const atLimit = {
      ...small,
      command: ['sh', '-c', `sleep 600 # ${'y'.repeat(60 * 1024)}`],
      env: { E: '€'.repeat(2730), F: 'ok' },
    };
    const res = await postJson(leases(), atLimit, { 'x-cashu': pool[0]!.token });
    expect(res.status).toBe(201);
    expect(await allSpent(wallet, pool[0]!.send)).toBe(true);
    const exec = await postJson(
      `${leases()}/${res.body.id}/exec`,
      { command: ['sh', '-c', 'printf %s "$F" | wc -c'] },
      { authorization: `Bearer ${String(res.body.token)}` },
    );
    expect(exec.body).toMatchObject({ exit_code: 0, stdout: '2\n' });
  });
});

describe('deadlines past what a lease can have are refused before payment', () => {
  it('a lease that would end after year 9999', async () => {
    now = Date.UTC(9999, 11, 30);
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 1, 64 * 24 * 3);
    await expectRefusedUnpaid('create', { ...small, seconds: 3 * 24 * 3600 }, { wallet, ...pool[0]! });
  });

  it('an extension that would take the lease past year 9999', async () => {
    now = Date.UTC(9999, 11, 30);
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 2, 64 * 24 * 2);
    const lease = await postJson(leases(), { ...small, seconds: 24 * 3600 }, { 'x-cashu': pool[0]!.token });
    expect(lease.status).toBe(201);
    const ext = await postJson(
      `${leases()}/${lease.body.id}/extend`,
      { seconds: 2 * 24 * 3600 },
      { 'x-cashu': pool[1]!.token },
    );
    expect(ext.status).toBe(400);
    expect(ext.body).toMatchObject({ error: 'invalid_request' });
    expect(await allUnspent(wallet, pool[1]!.send)).toBe(true);

    // Up to the last minute of 9999 is fine, and its retry is the same answer, not a refusal.
    const toLastMinute = { seconds: 24 * 3600 - 60 };
    const ok = await postJson(`${leases()}/${lease.body.id}/extend`, toLastMinute, {
      'x-cashu': pool[1]!.token,
    });
    expect(ok.status).toBe(200);
    expect(ok.body.expires_at).toBe('9999-12-31T23:59:00.000Z');
    const again = await postJson(`${leases()}/${lease.body.id}/extend`, toLastMinute, {
      'x-cashu': pool[1]!.token,
    });
    expect(again).toMatchObject({ status: 200, body: ok.body });
  });
});

describe('exec takes the same command schema', () => {
  it('a lone surrogate or NUL in an exec command is a 400, and the lease runs on', async () => {
    const { tokens: pool } = await tokens(t.mintUrl, 1, 64);
    const lease = await postJson(leases(), small, { 'x-cashu': pool[0]!.token });
    expect(lease.status).toBe(201);
    const auth = { authorization: `Bearer ${String(lease.body.token)}` };
    for (const command of [['echo', '\ud800'], ['echo', 'a\u0000'], Array(20).fill('x'.repeat(4000))]) {
      const res = await postJson(`${leases()}/${lease.body.id}/exec`, { command }, auth);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: 'invalid_request' });
    }
    const ok = await postJson(`${leases()}/${lease.body.id}/exec`, { command: ['echo', 'é😀'] }, auth);
    expect(ok.body).toMatchObject({ exit_code: 0, stdout: 'é😀\n' });
  });
});

describe('capacity with fractional vCPUs', () => {
  it('GET /v1/offers counts every 0.1-vCPU sandbox that fits', async () => {
    // cpus × 0.35 vCPU for sale, e.g. 0.7 on two cores: seven tenths, not six (0.7 / 0.1 = 6.99…).
    const res = (await (await fetch(`${t.url}/v1/offers`)).json()) as {
      offers: Array<{ id: string; available: number }>;
    };
    const expected = Math.floor((cpus * 350) / 100);
    expect(res.offers.find((o) => o.id === 'tenth')?.available).toBe(expected);
    expect(res.offers.find((o) => o.id === 'small')?.available).toBe(expected);
  });
});
