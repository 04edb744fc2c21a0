import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wallet } from '@cashu/cashu-ts';
import { afterEach, describe, expect, it } from 'vitest';
import { type ConfigInput, loadConfig } from '../../../src/config.js';
import { AlacarteNode } from '../../../src/node.js';
import { testDatabase, testStoreIsPostgres } from '../../helpers/postgres.js';

/**
 * Every NUT-04 mint quote is an invoice at the operator's Lightning node and a row in the store,
 * and every NUT-05 melt quote a row, asked for by anyone with no payment: the node bounds how many
 * may be unpaid per client address and over all (config mint.unpaidQuotesPerAddress,
 * maxUnpaidQuotes; mint and melt quotes counted apart). Beyond the bound: 429 in the NUT error
 * format, `Retry-After`, and nothing made. A wallet that pays its quotes never meets the bound.
 */

const nodes: Array<{ node: AlacarteNode; dir: string }> = [];
afterEach(async () => {
  for (const { node, dir } of nodes.splice(0)) {
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

async function mintNode(
  mint: ConfigInput['mint'],
  more: Pick<ConfigInput, 'trustProxy'> = {},
): Promise<{ node: AlacarteNode; mintUrl: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-quotes-'));
  const store = testStoreIsPostgres() ? { store: { url: await testDatabase(dir) } } : {};
  const config = loadConfig({
    flags: { port: 0, dataDir: dir, logLevel: 'silent', mint, ...more, ...store },
  });
  const node = await AlacarteNode.create(config);
  nodes.push({ node, dir });
  const { mintUrl } = await node.listen();
  return { node, mintUrl };
}

async function askQuote(mintUrl: string, amount = 10) {
  const res = await fetch(`${mintUrl}/v1/mint/quote/bolt11`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ amount, unit: 'sat' }),
  });
  const body = (await res.json()) as { quote: string; request: string; detail?: string; code?: number };
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body };
}

async function countOf(node: AlacarteNode, table: 'mint_mint_quotes' | 'mint_melt_quotes'): Promise<number> {
  const row = await node.db
    .selectFrom(table)
    .select(({ fn }) => fn.countAll().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Invoices that settle in an hour: every quote stays unpaid. */
const UNPAID = { lightning: { settleDelayMs: 3_600_000 } };

describe('quotes made for nothing are bounded; paying ones are not', () => {
  it('one address gets its unpaid quotes, then 429 with Retry-After and no invoice', async () => {
    const { node, mintUrl } = await mintNode({ ...UNPAID, unpaidQuotesPerAddress: 3 });
    for (let i = 0; i < 3; i++) expect((await askQuote(mintUrl)).status).toBe(200);
    const refused = await askQuote(mintUrl);
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({
      detail: expect.stringMatching(/too many unpaid mint quotes/),
      code: 10000,
    });
    // Until the oldest of them expires (the mint's invoices live an hour).
    expect(Number(refused.retryAfter)).toBeGreaterThan(3000);
    expect(await countOf(node, 'mint_mint_quotes')).toBe(3);
    // A malformed request is still a 400 of its own.
    const bad = await fetch(`${mintUrl}/v1/mint/quote/bolt11`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: -1, unit: 'sat' }),
    });
    expect(bad.status).toBe(400);
  });

  it('unpaid quotes over all clients are capped', async () => {
    const { node, mintUrl } = await mintNode({ ...UNPAID, maxUnpaidQuotes: 2 });
    expect([(await askQuote(mintUrl)).status, (await askQuote(mintUrl)).status]).toEqual([200, 200]);
    const refused = await askQuote(mintUrl);
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(await countOf(node, 'mint_mint_quotes')).toBe(2);
  });

  it('a wallet that pays and mints its quotes is never held back', async () => {
    // settleDelayMs 0: the fake backend settles each invoice at once and the mint books it.
    const { mintUrl } = await mintNode({ unpaidQuotesPerAddress: 2, maxUnpaidQuotes: 2 });
    const wallet = new Wallet(mintUrl, { unit: 'sat' });
    await wallet.loadMint();
    for (let i = 0; i < 8; i++) {
      const quote = await askQuote(mintUrl);
      expect(quote.status).toBe(200);
      expect((await wallet.mintProofsBolt11(10, quote.body.quote)).length).toBeGreaterThan(0);
    }
  });

  it('melt quotes (a row each) are bounded per address too, counted apart from mint quotes', async () => {
    // Unpaid mint quotes fill the cap over all; asking to melt is not refused for that.
    const { node, mintUrl } = await mintNode({ ...UNPAID, unpaidQuotesPerAddress: 2, maxUnpaidQuotes: 1 });
    const invoice = (await askQuote(mintUrl)).body;
    expect((await askQuote(mintUrl)).status).toBe(429);
    const askMelt = () =>
      fetch(`${mintUrl}/v1/melt/quote/bolt11`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ request: invoice.request, unit: 'sat' }),
      });
    expect((await askMelt()).status).toBe(200);
    const refused = await askMelt();
    // maxUnpaidQuotes 1 for melt quotes too: the second unpaid one is refused.
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toEqual({
      detail: expect.stringMatching(/too many unpaid melt quotes/),
      code: 10000,
    });
    expect(await countOf(node, 'mint_melt_quotes')).toBe(1);
  });

  it('behind a proxy named in trustProxy, each client behind it is counted on its own', async () => {
    const { mintUrl } = await mintNode(
      { ...UNPAID, unpaidQuotesPerAddress: 1 },
      { trustProxy: ['127.0.0.2'] },
    );
    // The proxy (127.0.0.2) forwards two clients; each gets its one quote, then 429.
    const viaProxy = (client: string) =>
      new Promise<number>((resolve, reject) => {
        const url = new URL(`${mintUrl}/v1/mint/quote/bolt11`);
        const req = request(
          {
            host: url.hostname,
            port: url.port,
            path: url.pathname,
            method: 'POST',
            localAddress: '127.0.0.2',
            headers: { 'content-type': 'application/json', 'x-forwarded-for': client },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ amount: 10, unit: 'sat' }));
      });
    expect(await viaProxy('198.51.100.7')).toBe(200);
    expect(await viaProxy('198.51.100.8')).toBe(200);
    expect(await viaProxy('198.51.100.7')).toBe(429);
  });
});
