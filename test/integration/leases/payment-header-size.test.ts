import { connect } from 'node:net';
import { getEncodedToken, type Proof, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allSpent,
  allUnspent,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  sumOf,
} from '../../helpers/lease-node.js';

/**
 * Issue 9, section 7: a token of a few hundred proofs fits in `X-Cashu` (up to 64 KiB); a larger
 * one, or a request head over the node's header bound, is `413 payload_too_large` in the API's
 * error shape, and takes no money.
 */
let t: LeaseTestNode;
let wallet: Wallet;

beforeAll(async () => {
  t = await startLeaseNode();
  wallet = new Wallet(t.mintUrl, { unit: 'sat' });
  await wallet.loadMint();
});
afterAll(async () => {
  await t?.close();
});

/** `count` proofs of 1 sat each, minted at the node's mint (the fake Lightning settles at once). */
async function ones(count: number): Promise<Proof[]> {
  const quote = await wallet.createMintQuoteBolt11(count);
  return wallet.mintProofsBolt11(count, quote.quote, undefined, {
    type: 'random',
    denominations: Array.from({ length: count }, () => 1),
  });
}

const tokenOf = (proofs: Proof[], removeDleq = false) =>
  getEncodedToken({ mint: t.mintUrl, proofs, unit: 'sat' }, { removeDleq });
let leaseId: string;

/** Sends raw bytes and returns the status line's code and the body (0 when the node hung up first). */
function raw(request: Buffer): Promise<{ status: number; body: string }> {
  const url = new URL(t.url);
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname);
    let text = '';
    socket.on('data', (b: Buffer) => {
      text += b.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    socket.write(request);
  });
}

const body = { offer: 'small', seconds: 3600, image: 'busybox' }; // 60 sat

describe('X-Cashu up to 64 KiB', () => {
  it('buys a lease with a token of a few hundred proofs (well past 16 KiB)', async () => {
    // As wallets send them: 200 proofs with their DLEQ proofs, or 400 without.
    for (const [count, removeDleq] of [
      [200, false],
      [400, true],
    ] as const) {
      const proofs = await ones(count);
      const token = tokenOf(proofs, removeDleq);
      expect(token.length).toBeGreaterThan(40 * 1024);
      expect(token.length).toBeLessThanOrEqual(64 * 1024);
      const res = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': token });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body).toMatchObject({ state: 'running', paid: count });
      const change = await wallet.receive(String(res.body.change));
      expect(sumOf(change)).toBe(count - 60);
      expect(await allSpent(wallet, proofs)).toBe(true);
      leaseId = String(res.body.id);
    }
  });

  it('answers a token over 64 KiB with 413 payload_too_large and leaves it unspent', async () => {
    const proofs = await ones(250);
    const token = tokenOf(proofs);
    expect(token.length).toBeGreaterThan(64 * 1024);
    const res = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': token });
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ error: 'payload_too_large', message: expect.any(String) });
    expect(await allUnspent(wallet, proofs)).toBe(true);
  });

  it('answers a 65 KiB X-Cashu of any kind with 413 payload_too_large, on extend too', async () => {
    const junk = `cashuB${'A'.repeat(65 * 1024)}`;
    const create = await postJson(`${t.url}/v1/leases`, body, { 'x-cashu': junk });
    expect(create.status).toBe(413);
    expect(create.body).toEqual({ error: 'payload_too_large', message: expect.any(String) });
    const extend = await postJson(
      `${t.url}/v1/leases/${leaseId}/extend`,
      { seconds: 60 },
      { 'x-cashu': junk },
    );
    expect(extend.status).toBe(413);
    expect(extend.body).toMatchObject({ error: 'payload_too_large' });
  });

  it('answers a request head over the node bound with 413 in the API shape, not a bare 431', async () => {
    for (const size of [100 * 1024, 1024 * 1024]) {
      const head = `POST /v1/leases HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\nx-cashu: cashuB${'A'.repeat(size)}\r\n\r\n{}`;
      const answer = await raw(Buffer.from(head, 'latin1'));
      expect(answer.status, `head of ${size} bytes`).toBe(413);
      expect(JSON.parse(answer.body)).toEqual({ error: 'payload_too_large', message: expect.any(String) });
    }
    // Many headers that are each small but together too large: the same.
    const many = Array.from({ length: 2000 }, (_, i) => `x-pad-${i}: ${'b'.repeat(60)}\r\n`).join('');
    const answer = await raw(Buffer.from(`GET /healthz HTTP/1.1\r\nhost: x\r\n${many}\r\n`, 'latin1'));
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'payload_too_large' });
  });

  it('answers malformed framing in the API shape too', async () => {
    const answer = await raw(Buffer.from('GET /healthz HTTP/1.1\r\nhost x\r\n\r\n', 'latin1'));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toEqual({ error: 'invalid_request', message: expect.any(String) });
    const health = await fetch(`${t.url}/healthz`);
    expect(health.status).toBe(200);
  });
});
