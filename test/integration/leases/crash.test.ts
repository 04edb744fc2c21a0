import { existsSync } from 'node:fs';
import type { Proof } from '@cashu/cashu-ts';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../../helpers/cli.js';
import { expectBalanced, ledgerOf, postJson, statesOf, sumOf, tokens } from '../../helpers/lease-node.js';
import {
  killMidBurst,
  NodeProcess,
  QUARTER_OFFER,
  restartAfterKill,
  stopAllAndCheck,
} from '../../helpers/node-process.js';

/**
 * Rule 5: the built server (`node dist/cli/main.js serve`) is killed with SIGKILL in the middle of
 * a burst of paid requests and started again on the same data directory and port. Every token it
 * took must map to a running lease or a refund, tokens it did not take stay unspent, the books
 * balance, and no sandbox runs that nobody paid for.
 */
const OPERATOR = 'operator-token-for-crash-tests-0123';
const BURST = 20;
// A quarter-core offer: all of the burst fits (8 vCPUs of capacity), so no request is refused
// for capacity and the kill lands among paid starts.
const body = { offer: 'quarter', seconds: 7200, image: 'busybox' }; // 60 sat/h → 120 sat
const nodeProcess = new NodeProcess({
  prefix: 'crash',
  config: { offers: [QUARTER_OFFER] },
  env: { ALACARTE_OPERATOR_TOKEN: OPERATOR },
});

afterAll(() => nodeProcess.cleanup());

describe('kill -9 in the middle of paid requests', () => {
  it('loses no money and leaves no unpaid sandbox after a restart', async () => {
    expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
    const server = await nodeProcess.start();
    const { wallet, tokens: pool } = await tokens(server.mintUrl, BURST, 128);

    // The burst: each request its own token. Kill the server once a few have been answered, while
    // the rest are somewhere between inspection, payment and sandbox start.
    const first = server;
    const burst = await killMidBurst(
      nodeProcess,
      pool.map((p) => () => postJson(`${first.url}/v1/leases`, body, { 'x-cashu': p.token })),
      (answered) => answered.filter((r) => r.status === 201).length === 3,
    );
    const outcomes = burst.map((r) => (r === 'connection lost' ? r : r.status));
    // Every answer before the kill was a paid lease; the rest were cut off.
    for (const o of outcomes) expect([201, 'connection lost']).toContain(o);
    expect(outcomes.filter((o) => o === 201).length).toBeGreaterThanOrEqual(3);

    const { url, receiver } = await restartAfterKill(nodeProcess);

    const running = new Map<string, string>(); // lease id → credential
    let taken = 0;
    let refundedTokens = 0;
    for (const [i, p] of pool.entries()) {
      const states = await statesOf(wallet, p.send);
      expect(new Set(states).size, `token ${i} is partly spent: ${states}`).toBe(1);
      if (states[0] === 'UNSPENT') {
        expect(outcomes[i], `token ${i} was answered 201 yet is unspent`).not.toBe(201);
        continue;
      }
      expect(states[0]).toBe('SPENT');
      taken++;
      // Taken: the replay shows the lease, or the refund of a start the crash cut short.
      const replay = await postJson(`${url}/v1/leases`, body, { 'x-cashu': p.token });
      if (replay.status === 200) {
        expect(replay.body).toMatchObject({ state: 'running', paid: 128 });
        running.set(String(replay.body.id), String(replay.body.token));
        const change = await receiver.receive(String(replay.body.change));
        expect(sumOf(change)).toBe(8);
      } else {
        expect(replay.status, JSON.stringify(replay.body)).toBe(503);
        expect(replay.body).toMatchObject({ error: 'start_failed', refunded: 128 });
        const refund: Proof[] = await receiver.receive(String(replay.body.refund));
        expect(sumOf(refund)).toBe(128);
        refundedTokens++;
      }
    }
    expect(taken).toBeGreaterThanOrEqual(3);

    for (const [id, credential] of running) {
      const exec = await postJson(
        `${url}/v1/leases/${id}/exec`,
        { command: ['cat', '/run/alacarte/lease.json'] },
        { authorization: `Bearer ${credential}` },
      );
      expect(exec.status).toBe(200);
      expect(String(exec.body.stdout)).toContain(id);
    }

    const books = await ledgerOf(url, OPERATOR);
    expect(expectBalanced(books)).toEqual([]);
    expect(books.received).toBe(120 * taken);
    expect(books.leases.running).toBe(running.size);
    expect(books.leases.failed).toBe(refundedTokens);
    expect(books.refunded).toBe(120 * refundedTokens);

    // Stop what runs; the books still balance and nothing is left in crun.
    await stopAllAndCheck(nodeProcess, running, OPERATOR);
  });
});
