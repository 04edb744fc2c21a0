import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fundedWallet,
  type LeaseTestNode,
  postJson,
  startLeaseNode,
  tokenOf,
} from '../helpers/lease-node.js';
import { tarMembers } from '../helpers/tar.js';
import { launchChromium } from './browser.js';

// The upload and download buttons of the running lease, in a real browser against a real node.

const STEP = { timeout: 30_000 };
let t: LeaseTestNode;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
let lease: { id: string; token: string; offer: string; expires_at: string };
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist/web/index.html'))) {
    throw new Error('the web page is not built: run `npm run build` first (npm test does)');
  }
  t = await startLeaseNode();
  const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
  const { token } = await tokenOf(wallet, t.mintUrl, proofs, 10);
  const res = await postJson(
    `${t.url}/v1/leases`,
    { offer: 'small', seconds: 600, image: 'busybox' },
    { 'x-cashu': token },
  );
  expect(res.status).toBe(201);
  lease = res.body as typeof lease;
  browser = await launchChromium();
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  // The page holds this lease as if it had rented it (its own key in localStorage).
  await page.goto(t.url, { waitUntil: 'load' });
  const held = { id: lease.id, bearer: lease.token, offer: lease.offer, expires_at: lease.expires_at };
  await page.evaluate(`localStorage.setItem('alacarte.lease.v1', ${JSON.stringify(JSON.stringify(held))})`);
  await page.reload({ waitUntil: 'load' });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

describe('the web page: files of the running lease', () => {
  it('uploads a picked file to the sandbox and downloads it back byte for byte', async () => {
    await page.locator('#lease').waitFor({ state: 'visible', ...STEP });
    const data = randomBytes(1024 * 1024);
    await page.getByLabel('File path').fill('/root/');
    await page
      .locator('#files-pick')
      .setInputFiles({ name: 'up.bin', mimeType: 'application/octet-stream', buffer: data });
    await page.locator('#files-status').getByText('Uploaded 1.0 MiB to /root/up.bin.').waitFor(STEP);
    const stored = await fetch(`${t.url}/v1/leases/${lease.id}/files?path=/root/up.bin`, {
      headers: { authorization: `Bearer ${lease.token}` },
    });
    expect(Buffer.from(await stored.arrayBuffer()).equals(data)).toBe(true);

    await page.getByLabel('File path').fill('/root/up.bin');
    const [download] = await Promise.all([
      page.waitForEvent('download', STEP),
      page.getByRole('button', { name: 'Download' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('up.bin');
    expect(readFileSync(await download.path()).equals(data)).toBe(true);
  });

  it('downloads a directory as a .tar and says what went wrong in a sentence', async () => {
    await page.getByLabel('File path').fill('/root');
    const [download] = await Promise.all([
      page.waitForEvent('download', STEP),
      page.getByRole('button', { name: 'Download' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('root.tar');
    const names = tarMembers(readFileSync(await download.path())).map((m) => m.name);
    expect(names).toContain('./up.bin');

    await page.getByLabel('File path').fill('/no/such/file');
    await page.getByRole('button', { name: 'Download' }).click();
    await page
      .locator('#files-status')
      .getByText(/Download failed: .*does not exist \(not_found\)/)
      .waitFor(STEP);
    expect(pageErrors).toEqual([]);
  });
});
