import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { getEncodedToken, MintQuoteState, Wallet } from '@cashu/cashu-ts';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LeaseTestNode, startLeaseNode } from '../helpers/lease-node.js';
import { launchChromium } from './browser.js';

// A renter publishes a port from the page, starts a server in the terminal and opens its link;
// the server's page cannot read the node page's wallet, though both share the node's host name.

const STEP = { timeout: 30_000 };
let t: LeaseTestNode;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist/web/index.html'))) {
    throw new Error('the web page is not built: run `npm run build` first (npm test does)');
  }
  t = await startLeaseNode();
  browser = await launchChromium();
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
});
afterAll(async () => {
  await browser?.close();
  await t?.close();
});

describe('the web page: published ports', () => {
  it('rents with a port, shows its link, and the link reaches a server started in the terminal', async () => {
    await page.goto(t.url, { waitUntil: 'load' });
    await page.getByRole('status').getByText('Ready.').waitFor(STEP);
    const wallet = new Wallet(t.mintUrl, { unit: 'sat' });
    await wallet.loadMint();
    const quote = await wallet.createMintQuoteBolt11(100);
    await expect
      .poll(async () => (await wallet.checkMintQuoteBolt11(quote.quote)).state, STEP)
      .toBe(MintQuoteState.PAID);
    const proofs = await wallet.mintProofsBolt11(100, quote.quote);
    await page
      .getByLabel('Paste a Cashu token')
      .fill(getEncodedToken({ mint: t.mintUrl, unit: 'sat', proofs }));
    await page.getByRole('button', { name: 'Receive', exact: true }).click();
    await page.getByRole('status').getByText('Received 100 sat.').waitFor(STEP);

    await page.getByLabel(/Ports to publish/).fill('80, 99999');
    await page.getByRole('button', { name: /^Rent/ }).click();
    await page
      .getByRole('status')
      .getByText(/Ports are numbers from 1 to 65535/)
      .waitFor(STEP);

    await page.getByLabel(/Ports to publish/).fill('8080');
    await page.getByRole('button', { name: /^Rent/ }).click();
    await page
      .getByRole('status')
      .getByText(/Sandbox lse_\S+ is running\./)
      .waitFor(STEP);
    const link = page.locator('#lease-ports a');
    await expect.poll(() => link.count(), STEP).toBe(1);
    const href = (await link.getAttribute('href')) ?? '';
    expect(href).toMatch(new RegExp(`^${t.url}/v1/leases/lse_[a-z0-9]+/ports/8080/$`));
    expect(await link.textContent()).toBe(`8080 → ${href}`);

    await expect.poll(() => page.locator('#terminal-state').textContent(), STEP).toBe('connected');
    await page.locator('#terminal').click();
    await page.keyboard.type(
      "mkdir /www; echo '<p id=hi>hello</p>' > /www/index.html; httpd -p 8080 -h /www\n",
      {
        delay: 10,
      },
    );
    const site = await browser.context.newPage();
    await expect.poll(async () => (await site.goto(href).catch(() => undefined))?.status(), STEP).toBe(200);
    expect(await site.locator('#hi').textContent()).toBe('hello');
    // Same host name as the node's page, but an opaque origin: the wallet in localStorage is out of reach.
    const reach = await site.evaluate(
      "(() => { try { return 'read ' + localStorage.length + ' items'; } catch (err) { return err.name; } })()",
    );
    expect(reach).toBe('SecurityError');
    expect(await site.evaluate('window.origin')).toBe('null');

    // A hostile server on the port answers with headers that would clear the whole origin's
    // storage and set its cookies: the node page's wallet and cookies stay as they were.
    const stored = await page.evaluate('localStorage.length');
    expect(stored).toBeGreaterThan(0);
    await page.locator('#terminal').click();
    await page.keyboard.type(
      'killall httpd; printf \'HTTP/1.1 200 OK\\r\\nClear-Site-Data: "*"\\r\\nSet-Cookie: t=1; Path=/\\r\\n' +
        "Content-Type: text/html\\r\\nContent-Length: 13\\r\\nConnection: close\\r\\n\\r\\n<p id=x>x</p>' > /r; " +
        // killall returns before httpd has let go of the port: nc retries until it can listen.
        '(until nc -ll -p 8080 -e cat /r; do sleep 0.2; done) &\n',
      { delay: 10 },
    );
    await expect
      .poll(async () => (await site.goto(href).catch(() => undefined))?.headers()['content-length'], STEP)
      .toBe('13');
    await page.reload({ waitUntil: 'load' });
    expect(await page.evaluate('localStorage.length')).toBe(stored);
    expect(await browser.context.cookies()).toEqual([]);
    await site.close();
  });
});
