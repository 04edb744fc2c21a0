import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LeaseTestNode, startLeaseNode } from '../../helpers/lease-node.js';

/**
 * Unpaid 402s make Lightning invoices; a client may not make the node create them without bound
 * (rails/l402/invoice-limits.ts). Over its limit a client still gets a 402 it can pay — the Cashu
 * challenge — but no fresh invoice, and `Retry-After` says when it may have one.
 */
let t: LeaseTestNode;
beforeAll(async () => {
  t = await startLeaseNode({
    l402: { invoiceBurst: 2, invoicesPerMinute: 1, maxUnpaidInvoices: 3 },
    // The fake backend's invoices then stay unpaid until someone pays them (by default they
    // settle by themselves at once).
    mint: { lightning: { settleDelayMs: 3_600_000 } },
  });
});
afterAll(async () => {
  await t?.close();
});

const body = JSON.stringify({ offer: 'small', seconds: 3600, image: 'busybox' });

/** POST /v1/leases without payment from the loopback address `from` (127.0.0.0/8 is all local). */
function ask(
  from: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: Record<string, unknown> }> {
  const url = new URL(`${t.url}/v1/leases`);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        localAddress: from,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function expectInvoice(answer: Awaited<ReturnType<typeof ask>>): string {
  expect(answer.status).toBe(402);
  expect(String(answer.headers['www-authenticate'])).toMatch(/L402 macaroon="[^"]+", invoice="lnbc/);
  expect(answer.headers['retry-after']).toBeUndefined();
  return (answer.body.l402 as { invoice: string }).invoice;
}

function expectNoInvoice(answer: Awaited<ReturnType<typeof ask>>): number {
  // Still a 402 a Cashu wallet pays at once: the NUT-18 request and the body's price and mints.
  expect(answer.status).toBe(402);
  expect(answer.body).toMatchObject({
    error: 'payment_required',
    amount: 60,
    unit: 'sat',
    mints: [t.mintUrl],
  });
  expect(String(answer.headers['x-cashu'])).toMatch(/^creqA/);
  expect(answer.headers['www-authenticate']).toBeUndefined();
  expect(answer.body.l402).toBeUndefined();
  const wait = Number(answer.headers['retry-after']);
  expect(Number.isInteger(wait) && wait >= 1).toBe(true);
  return wait;
}

describe('L402 invoices per client and outstanding', () => {
  it('gives one address its burst of invoices, then 402s without one; other addresses are not held back', async () => {
    expectInvoice(await ask('127.0.0.1'));
    expectInvoice(await ask('127.0.0.1'));
    // One a minute once the burst is spent.
    const wait = expectNoInvoice(await ask('127.0.0.1'));
    expect(wait).toBeGreaterThan(1);
    expect(wait).toBeLessThanOrEqual(60);
    expectNoInvoice(await ask('127.0.0.1'));

    // The third invoice outstanding: the cap is reached for everyone.
    expectInvoice(await ask('127.0.0.2'));
    expectNoInvoice(await ask('127.0.0.3'));
    expectNoInvoice(await ask('127.0.0.2'));

    // (A paid invoice frees its place: test/unit/rails/l402/invoice-limits.test.ts; this node's
    // invoices never settle.)
  });
});
