import type { Proof, Wallet } from '@cashu/cashu-ts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  aroundDriver,
  expectBalanced,
  type LeaseTestNode,
  ledgerOf,
  satOffer as offer,
  postJson,
  startLeaseNode,
  statesOf,
  sumOf,
  tokens,
} from '../../helpers/lease-node.js';

/**
 * Everything that ends or pays a lease, at once, on one lease: a stop, the reaper (several passes,
 * beside the node's own), paid extensions and the showing of its refund, around its deadline. Runs
 * on SQLite and on PostgreSQL (vitest project `postgres`), where the passes really overlap. Each
 * lease must end once, each refund and change be given once, every payment end in time or come
 * back untouched, and the ledger balance: received = charged + refunded + held.
 *
 * The node's clock is a manual one: the deadline passes when the test says, while the requests
 * are under way.
 */
const OPERATOR = 'operator-token-for-ending-races-001';
let t: LeaseTestNode;
let now = Date.now();
/** Run when an extension asks the driver whether its sandbox runs: the last check before money moves. */
let beforeMoneyMoves: (() => void) | undefined;
/** What the node must have kept (for time) and refunded, tallied from its answers. */
const expected = { received: 0, refunded: 0 };

beforeAll(async () => {
  t = await startLeaseNode({ operatorToken: OPERATOR, offers: [offer('small', 0.25, 60)] }, undefined, {
    clock: () => new Date(now),
    wrapDriver: (real) =>
      aroundDriver(real, {
        isRunning: async (sandbox) => {
          const running = await real.isRunning(sandbox);
          beforeMoneyMoves?.();
          return running;
        },
      }),
  });
});
afterEach(async () => {
  for (const s of await t.driver.list()) await t.driver.stop(s);
});
afterAll(async () => {
  await t?.close();
});

const leases = () => `${t.url}/v1/leases`;
const auth = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });
/**
 * The lease as its holder sees it once a reaper pass has run: this test's pass may find the row
 * held by the node's own reaper (SKIP LOCKED on PostgreSQL), so the one that ends it is awaited.
 */
async function afterReaping(lease: Record<string, unknown>): Promise<{ state: string; expires_at: string }> {
  await reap();
  for (let i = 0; ; i++) {
    const res = await fetch(`${leases()}/${lease.id}`, { headers: auth(lease.token) });
    const view = (await res.json()) as { state: string; expires_at: string };
    if (view.state !== 'running' || i === 100) return view;
    await sleep(50);
  }
}

/** One reaper pass, as the node's own reaper makes them. */
function reap(): Promise<number> {
  const service = t.node.leases;
  if (!service) throw new Error('the node sells no leases');
  return service.reapExpired();
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A wallet of the node's mint takes `token` (a swap there); what it was worth. */
async function receive(wallet: Wallet, token: unknown): Promise<number> {
  return sumOf(await wallet.receive(String(token)));
}

describe('the deadline passing while an extension is under way', () => {
  it('refuses an extension whose deadline passed after its checks, before its transaction: token untouched, the lease expires', async () => {
    const { wallet, tokens: pool } = await tokens(t.mintUrl, 2, 64);
    const created = await postJson(
      leases(),
      { offer: 'small', seconds: 3600, image: 'busybox' },
      { 'x-cashu': pool[0]!.token },
    );
    expect(created.status).toBe(201);
    expected.received += 60;
    const lease = created.body;
    const deadline = Date.parse(String(lease.expires_at));
    now = deadline - 5;
    // Its checks pass (running, before the deadline); then the deadline passes.
    beforeMoneyMoves = () => {
      now = deadline + 1;
    };
    let extended: Awaited<ReturnType<typeof postJson>>;
    try {
      extended = await postJson(
        `${leases()}/${lease.id}/extend`,
        { seconds: 3600 },
        { 'x-cashu': pool[1]!.token },
      );
    } finally {
      beforeMoneyMoves = undefined;
    }
    // Paid time never starts again from "now" after a gap the sandbox may not have lived through
    // (its own init ends it at the deadline): the lease had expired, the payment is not taken.
    expect(extended.status, JSON.stringify(extended.body)).toBe(409);
    expect(extended.body.error).toBe('lease_not_running');
    expect((await statesOf(wallet, pool[1]!.send)).every((s) => s === 'UNSPENT')).toBe(true);
    const view = await afterReaping(lease);
    expect(view).toMatchObject({ state: 'expired', expires_at: new Date(deadline).toISOString() });
    expect(expectBalanced(await ledgerOf(t.url, OPERATOR))).toEqual([]);
  });
});

describe('a stop, the reaper, extensions and the refund racing on one lease', () => {
  // When the stop comes after the extensions, and the deadline passes after the stop: each timing
  // interleaves them differently (which wins is the race's; the rules hold whichever does).
  for (const [stopAfterMs, passAfterMs] of [
    [0, 0],
    [5, 5],
    [20, 10],
    [40, 30],
    [80, 5],
    [150, 0],
  ] as const) {
    it(`ends it once, gives its refund and change once, takes each extension in full or not at all (stop after ${stopAfterMs} ms, deadline ${passAfterMs} ms later)`, async () => {
      const EXTENSIONS = 6;
      const { wallet, tokens: pool } = await tokens(t.mintUrl, 1 + EXTENSIONS, 64);
      const created = await postJson(
        leases(),
        { offer: 'small', seconds: 3600, image: 'busybox' },
        { 'x-cashu': pool[0]!.token },
      );
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expected.received += 60;
      const lease = created.body;
      const deadline = Date.parse(String(lease.expires_at));
      now = deadline - 5;

      const extend = (token: string) =>
        postJson(`${leases()}/${lease.id}/extend`, { seconds: 3600 }, { 'x-cashu': token });
      const stop = () => postJson(`${leases()}/${lease.id}`, undefined, auth(lease.token), 'DELETE');
      const pending = pool.slice(1).map((p) => extend(p.token));
      await sleep(stopAfterMs);
      const stopping = stop();
      await sleep(passAfterMs);
      now = deadline + 1;
      const reaped = await Promise.all([1, 2, 3].map(() => reap()));
      const extensions = await Promise.all(pending);
      const stopped = await stopping;

      // Each extension: taken in full (200, its proofs spent, its change given) or refused with
      // its token untouched (409: the lease had ended, or the node's mint rolled the spend back).
      let taken = 0;
      for (const [i, e] of extensions.entries()) {
        const states = await statesOf(wallet, pool[i + 1]!.send as Proof[]);
        if (e.status === 200) {
          taken++;
          expect(states.every((s) => s === 'SPENT')).toBe(true);
          expect(await receive(wallet, e.body.change)).toBe(4);
        } else {
          expect(e.status, JSON.stringify(e.body)).toBe(409);
          expect(e.body.error).toBe('lease_not_running');
          expect(
            states.every((s) => s === 'UNSPENT'),
            JSON.stringify(e.body),
          ).toBe(true);
        }
      }
      expected.received += 60 * taken;

      // Every extension taken moved the deadline by its seconds from the one before: none was
      // granted once the deadline had passed (it would count from "now", after a gap).
      let view = (await (await fetch(`${leases()}/${lease.id}`, { headers: auth(lease.token) })).json()) as {
        state: string;
        expires_at: string;
      };
      expect(Date.parse(view.expires_at)).toBe(deadline + taken * 3_600_000);

      // A stop answered 200 stopped it, whatever extensions committed meanwhile (they are in its
      // refund); a 409 only when the lease had expired at its deadline.
      if (stopped.status !== 200) {
        expect(stopped.status, JSON.stringify(stopped.body)).toBe(409);
        expect(stopped.body.error).toBe('lease_not_running');
      }
      view = await afterReaping(lease);
      const reapedHere = reaped.reduce((n, k) => n + k, 0);
      if (stopped.status === 200) {
        expect(view.state).toBe('stopped');
        expect(reapedHere).toBe(0);
        // Refunded once: the same answer again, a token worth what it says, taken once only.
        const refunded = Number(stopped.body.refunded);
        // Every held sat back, less the one second begun since the deadline when the stop read the
        // clock after it had passed (whole seconds are refunded).
        expect([taken * 60, Math.max(0, taken * 60 - 1)]).toContain(refunded);
        expect((await stop()).body).toEqual(stopped.body);
        if (refunded > 0) {
          expect(await receive(wallet, stopped.body.refund)).toBe(refunded);
          await expect(receive(wallet, stopped.body.refund)).rejects.toThrow();
        } else expect(stopped.body.refund).toBeNull();
        expected.refunded += refunded;
      } else {
        // Expired at its deadline by one reaper pass (these, or the node's own), nothing refunded.
        expect(view.state).toBe('expired');
        expect(taken).toBe(0);
        expect(reapedHere).toBeLessThanOrEqual(1);
      }

      const books = await ledgerOf(t.url, OPERATOR);
      expect(expectBalanced(books)).toEqual([]);
      expect(books.received).toBe(expected.received);
      expect(books.refunded).toBe(expected.refunded);
      expect(books.held).toBe(0);
    });
  }
});
