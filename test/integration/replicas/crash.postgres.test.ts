import { Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectBalanced, ledgerOf, postJson, sumOf, tokens } from '../../helpers/lease-node.js';
import { killMidBurst, type NodeProcess, QUARTER_OFFER, startReplicas } from '../../helpers/node-process.js';
import { testDatabase, testPostgresUnavailable } from '../../helpers/postgres.js';

/**
 * Rule 5 across replicas: paid creates spread over 3 `alacarte serve` replicas on one PostgreSQL,
 * one replica killed with SIGKILL mid-burst. The others answer every request sent to them, during
 * and after the kill; every paid token sent to the killed one, retried through the others (as a
 * load balancer would) and again once it is back, ends in its one lease or its full refund; no
 * sandbox runs unpaid and every replica reads the same balanced books.
 */
const OPERATOR = 'operator-token-for-replica-crash-0123';
const PER_REPLICA = 5;
const BURST = 3 * PER_REPLICA;
const PRICE = 60; // 60 sat/h × 1 h
const body = { offer: 'quarter', seconds: 3600, image: 'busybox' };
const unavailable = testPostgresUnavailable();
const replicas: NodeProcess[] = [];

beforeAll(async () => {
  if (unavailable !== undefined) return;
  await startReplicas({
    into: replicas,
    prefix: 'crash-replica',
    count: 3,
    storeUrl: await testDatabase(),
    config: {
      offers: [QUARTER_OFFER],
    },
    env: { ALACARTE_OPERATOR_TOKEN: OPERATOR },
  });
});

afterAll(async () => {
  for (const replica of replicas) await replica.cleanup();
});

/** Replica i by its own address (the banner shows the public URL they share). */
const url = (i: number) => replicas[i]!.localUrl;

describe.skipIf(unavailable !== undefined)(
  `kill -9 of 1 of 3 replicas mid-burst ${unavailable ?? ''}`,
  () => {
    it('loses no paid token, and the other replicas carry on', async () => {
      // A burst whose kill cut nothing off (the victim answered all its requests in one batch,
      // before the first answer reached us) proves nothing about a crash: the victim is started
      // again and the burst repeated with fresh tokens, up to ATTEMPTS times.
      const ATTEMPTS = 3;
      const { tokens: pool } = await tokens(`${url(0)}/mint`, ATTEMPTS * BURST + 1, PRICE);
      const victim = replicas[2]!;
      const before: Awaited<ReturnType<typeof killMidBurst>> = [];
      let lost: number[] = [];
      for (let attempt = 0; attempt < ATTEMPTS && lost.length === 0; attempt++) {
        if (attempt > 0) await victim.start();
        const offset = before.length;
        // Token i goes to replica i % 3; the third replica is killed as its first lease is
        // answered, with the rest of its requests between payment and answer.
        const outcomes = await killMidBurst(
          victim,
          pool
            .slice(offset, offset + BURST)
            .map((t, i) => () => postJson(`${url(i % 3)}/v1/leases`, body, { 'x-cashu': t.token })),
          (answered, i) => i % 3 === 2 && answered.at(-1)?.status === 201,
        );
        for (const [i, r] of outcomes.entries()) {
          if (i % 3 !== 2) {
            expect(r, `request ${i} to a surviving replica`).not.toBe('connection lost');
            if (r !== 'connection lost') expect(r.status, JSON.stringify(r.body)).toBe(201);
          } else if (r !== 'connection lost') expect(r.status).toBe(201);
        }
        before.push(...outcomes);
        lost = before.flatMap((r, i) => (r === 'connection lost' ? [i] : []));
      }
      // The kill cut requests off mid-way (else this proves nothing about a crash).
      expect(lost.length).toBeGreaterThanOrEqual(1);
      const sold = before.length + 1;

      // With one replica down, the others sell a fresh lease...
      const fresh = await postJson(`${url(0)}/v1/leases`, body, { 'x-cashu': pool[before.length]!.token });
      expect(fresh.status).toBe(201);
      // ...and answer the lost requests: a lease, or "still being processed" (the dead replica's
      // start, which it settles when back), never a second charge nor a spent token.
      for (const i of lost) {
        const retry = await postJson(`${url(1)}/v1/leases`, body, { 'x-cashu': pool[i]!.token });
        expect([200, 201, 429], JSON.stringify(retry.body)).toContain(retry.status);
      }

      await victim.start();
      const receiver = new Wallet(`${url(0)}/mint`, { unit: 'sat' });
      await receiver.loadMint();
      const running = new Set<string>(
        before.flatMap((r) => (r === 'connection lost' ? [] : [String(r.body.id)])),
      );
      running.add(String(fresh.body.id));
      let refunded = 0;
      for (const i of lost) {
        const retry = await postJson(`${url(i % 2)}/v1/leases`, body, { 'x-cashu': pool[i]!.token });
        if (retry.status === 200 || retry.status === 201) {
          expect(retry.body).toMatchObject({ state: 'running', paid: PRICE });
          running.add(String(retry.body.id));
        } else {
          expect(retry.status, JSON.stringify(retry.body)).toBe(503);
          expect(retry.body).toMatchObject({ error: 'start_failed', refunded: PRICE });
          expect(sumOf(await receiver.receive(String(retry.body.refund)))).toBe(PRICE);
          refunded++;
        }
        // And again, through the replica that was killed: the same outcome.
        const again = await postJson(`${url(2)}/v1/leases`, body, { 'x-cashu': pool[i]!.token });
        expect(again.status).toBe(retry.status === 503 ? 503 : 200);
        if (again.status === 200) expect(again.body.id).toBe(retry.body.id);
      }
      expect(running.size + refunded).toBe(sold);

      // No sandbox without a paid, running lease, and no running lease without its sandbox.
      const sandboxes = replicas.flatMap((r) => r.runningSandboxes());
      expect(new Set(sandboxes)).toEqual(running);
      expect(sandboxes.length).toBe(running.size);
      for (const i of [0, 1, 2]) {
        const books = await ledgerOf(url(i), OPERATOR);
        expect(expectBalanced(books)).toEqual([]);
        expect(books.received).toBe(PRICE * sold);
        expect(books.leases).toMatchObject({ running: running.size, failed: refunded });
        expect(books.refunded).toBe(PRICE * refunded);
      }
    });
  },
);
