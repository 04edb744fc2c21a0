import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Wallet } from '@cashu/cashu-ts';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  startMintNode,
  sumOf,
  tokenOf,
} from '../helpers/lease-node.js';
import { launchChromium } from './browser.js';

// A lease rented from the page (this node's mint) and extended by someone else with a trusted
// mint's ecash: stopping it from the page puts this mint's refund into the page's wallet and shows
// the trusted mint's part as a token for a wallet of that mint.

const STEP = { timeout: 30_000 };
let external: Awaited<ReturnType<typeof startMintNode>>;
let t: LeaseTestNode;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist/web/index.html'))) {
    throw new Error('the web page is not built: run `npm run build` first (npm test does)');
  }
  external = await startMintNode();
  t = await startLeaseNode({ trustedMints: [external.mintUrl] });
  browser = await launchChromium();
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
  page.on('pageerror', (err) => pageErrors.push(String(err)));
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
  await external?.close();
});

async function balance(): Promise<number> {
  const text = (await page.locator('#balance').textContent()) ?? '';
  const match = /^(\d+) sat$/.exec(text.trim());
  if (!match) throw new Error(`balance shows "${text}"`);
  return Number(match[1]);
}

describe('the web page: a lease paid at two mints', () => {
  it('stops it and gets each mint’s part back', async () => {
    await page.goto(t.url, { waitUntil: 'load' });
    await page.getByRole('status').getByText('Ready.').waitFor(STEP);
    await page.getByLabel('Top up (sat)').fill('200');
    await page.getByRole('button', { name: 'Get Lightning invoice' }).click();
    await expect.poll(balance, STEP).toBe(200);
    await page.getByRole('radio', { name: /small/ }).waitFor(STEP);
    await page.getByRole('button', { name: 'Rent for 60 sat' }).click();
    const running = page.getByRole('status').getByText(/Sandbox lse_\S+ is running\./);
    await running.waitFor(STEP);
    const id = /(lse_\S+?) is running/.exec((await running.textContent()) ?? '')?.[1];
    expect(id).toMatch(/^lse_/);
    await expect.poll(balance, STEP).toBe(140);

    // Someone else funds another hour with the trusted mint's ecash.
    const ext = await fundedWallet(external.mintUrl, 100);
    const topUp = await tokenOf(ext.wallet, external.mintUrl, ext.proofs, 60);
    const extend = await postJson(
      `${t.url}/v1/leases/${id}/extend`,
      { seconds: 3600 },
      { 'x-cashu': topUp.token },
    );
    expect(extend.status).toBe(200);

    await page.getByRole('button', { name: 'Stop and refund' }).click();
    const news = page.locator('#wallet-news');
    await expect.poll(() => news.textContent(), STEP).toMatch(/^Refund: \d+ sat back in your wallet\./);
    const text = (await news.textContent()) ?? '';
    const own = Number(/^Refund: (\d+) sat/.exec(text)?.[1]);
    // The last hour (the trusted mint's) comes back first and whole; about an hour of this mint's.
    expect(own).toBeGreaterThanOrEqual(55);
    expect(own).toBeLessThanOrEqual(60);
    await expect.poll(balance, STEP).toBe(140 + own);
    expect(text).toContain(`60 sat came back from ${external.mintUrl}`);
    const foreign = /(cashuB\S+)/.exec(text)?.[1];
    const receiver = new Wallet(external.mintUrl, { unit: 'sat' });
    await receiver.loadMint();
    expect(sumOf(await receiver.receive(String(foreign)))).toBe(60);
    // Nothing stays pending: a reload does not try the other mint's token again.
    await page.reload({ waitUntil: 'load' });
    await page.getByRole('status').getByText('Ready.').waitFor(STEP);
    await expect.poll(balance, STEP).toBe(140 + own);
    expect(pageErrors).toEqual([]);
  });
});
