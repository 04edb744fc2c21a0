import { CheckStateEnum, decodePaymentRequest, getDecodedToken, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  sumOf,
  tokenOf,
} from '../../helpers/lease-node.js';

let t: LeaseTestNode;
beforeAll(async () => {
  t = await startLeaseNode({ operatorToken: 'operator-token-for-tests-0123456789' });
});
afterAll(async () => {
  await t?.close();
});

const createBody = { offer: 'small', seconds: 7200, image: 'busybox' };

describe('paid leases end to end', () => {
  it('answers an unpaid request with a NUT-18 challenge a wallet can read', async () => {
    const res = await postJson(`${t.url}/v1/leases`, createBody);
    expect(res.status).toBe(402);
    expect(res.body).toMatchObject({
      error: 'payment_required',
      amount: 120,
      unit: 'sat',
      mints: [t.mintUrl],
    });
    const request = decodePaymentRequest(res.headers.get('x-cashu') ?? '');
    expect(Number(request.amount)).toBe(120);
    expect(request.unit).toBe('sat');
    expect(request.mints).toEqual([t.mintUrl]);
  });

  it('rents a running sandbox for a token, gives change, and replays without charging twice', async () => {
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 200);
    const { token, send } = await tokenOf(wallet, t.mintUrl, proofs, 128);
    const first = await postJson(`${t.url}/v1/leases`, createBody, { 'x-cashu': token });
    expect(first.status).toBe(201);
    const lease = first.body;
    expect(lease).toMatchObject({
      state: 'running',
      offer: 'small',
      image: 'busybox',
      paid: 128,
      unit: 'sat',
    });
    expect(lease.id).toMatch(/^lse_/);
    expect(typeof lease.token).toBe('string');
    expect(typeof lease.change).toBe('string');
    expect(first.headers.get('x-cashu')).toBe(lease.change);

    // The change is real ecash of the node's mint: a third-party wallet receives it.
    const other = new Wallet(t.mintUrl, { unit: 'sat' });
    await other.loadMint();
    const change = await other.receive(lease.change as string);
    expect(sumOf(change)).toBe(8);

    // The token is spent at the mint now.
    const states = await wallet.checkProofsStates(send);
    expect(states.every((s) => s.state === CheckStateEnum.SPENT)).toBe(true);

    // Replaying the same request: same lease, same body, 200, no second charge.
    const replay = await postJson(`${t.url}/v1/leases`, createBody, { 'x-cashu': token });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(lease);

    // The sandbox answers.
    const exec = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      { command: ['sh', '-c', 'echo hi; cat /run/alacarte/lease.json'] },
      { authorization: `Bearer ${lease.token}` },
    );
    expect(exec.status).toBe(200);
    expect(exec.body.exit_code).toBe(0);
    expect(String(exec.body.stdout)).toContain('hi\n');
    expect(String(exec.body.stdout)).toContain(String(lease.id));

    // Status needs the credential; every failure looks the same.
    const ok = await fetch(`${t.url}/v1/leases/${lease.id}`, {
      headers: { authorization: `Bearer ${lease.token}` },
    });
    expect(ok.status).toBe(200);
    const status = (await ok.json()) as Record<string, unknown>;
    expect(status).toMatchObject({ id: lease.id, state: 'running', paid: 128 });
    expect(status.token).toBeUndefined();
    expect(Number(status.remaining_seconds)).toBeGreaterThan(7100);
    for (const auth of [undefined, 'Bearer wrong', `Bearer ${lease.token}x`]) {
      const res = await fetch(`${t.url}/v1/leases/${lease.id}`, {
        headers: auth ? { authorization: auth } : {},
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'unauthorized' });
    }
    const unknown = await fetch(`${t.url}/v1/leases/lse_00000000000000000000000000`, {
      headers: { authorization: `Bearer ${lease.token}` },
    });
    expect(unknown.status).toBe(401);

    // Stop early: the unused whole seconds come back as a token; stopping again repeats the answer.
    const stop = await postJson(
      `${t.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
    expect(stop.body.state).toBe('stopped');
    expect(Number(stop.body.refunded)).toBeGreaterThanOrEqual(118);
    const refundToken = getDecodedToken(
      stop.body.refund as string,
      other.keyChain.getKeysets().map((k) => k.id),
    );
    expect(sumOf(refundToken.proofs)).toBe(stop.body.refunded);
    const again = await postJson(
      `${t.url}/v1/leases/${lease.id}`,
      undefined,
      { authorization: `Bearer ${lease.token}` },
      'DELETE',
    );
    expect(again.body).toEqual(stop.body);
    expect(sumOf(await other.receive(stop.body.refund as string))).toBe(stop.body.refunded);

    const gone = await postJson(
      `${t.url}/v1/leases/${lease.id}/exec`,
      { command: ['true'] },
      { authorization: `Bearer ${lease.token}` },
    );
    expect(gone.status).toBe(409);
    expect(gone.body.error).toBe('lease_not_running');

    const books = await fetch(`${t.url}/v1/operator/ledger`, {
      headers: { authorization: 'Bearer operator-token-for-tests-0123456789' },
    }).then(
      (r) => r.json() as Promise<{ received: number; charged: number; refunded: number; held: number }>,
    );
    expect(books.received).toBe(books.charged + books.refunded + books.held);
  });
});
