import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { getDecodedToken, getEncodedToken, MintQuoteState, Wallet } from '@cashu/cashu-ts';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LeaseTestNode, startLeaseNode } from '../helpers/lease-node.js';
import { typeUntil } from '../helpers/terminal.js';
import { ARTIFACTS, launchChromium } from './browser.js';

// The whole journey of a renter in a real browser against a real node (mint with the fake
// Lightning backend, crun sandboxes): top up, rent, use the terminal, stop, get the refund.

const STEP = { timeout: 30_000 };
let t: LeaseTestNode;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let context: BrowserContext;
let page: Page;
/** Every URL the browser asked for (pages, scripts, fetches, WebSockets). */
const requested: string[] = [];
const cspViolations: string[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist/web/index.html'))) {
    throw new Error('the web page is not built: run `npm run build` first (npm test does)');
  }
  // The invoice stays unpaid for a moment, so the page's wait-then-mint path is what runs.
  t = await startLeaseNode({ mint: { lightning: { settleDelayMs: 1500 } } });
  browser = await launchChromium();
  context = browser.context;
  context.on('request', (request) => requested.push(request.url()));
  page = context.pages()[0] ?? (await context.newPage());
  page.on('websocket', (socket) => requested.push(socket.url()));
  page.on('console', (message) => {
    if (/Content.Security.Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  page.on('pageerror', (err) => pageErrors.push(String(err)));
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

async function shot(name: string): Promise<void> {
  // From the top: a full-page shot of a scrolled page draws the sticky header mid-page.
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function balance(): Promise<number> {
  const text = (await page.locator('#balance').textContent()) ?? '';
  const match = /^(\d+) sat$/.exec(text.trim());
  if (!match) throw new Error(`balance shows "${text}"`);
  return Number(match[1]);
}

/** What the terminal shows, as text (xterm's DOM renderer keeps one element per row). */
async function terminalText(): Promise<string> {
  // biome-ignore lint/performance/useDomNodeTextContent: only innerText keeps the breaks between rows.
  return (await page.locator('#terminal .xterm-rows').innerText()).replace(/\u00a0/g, ' ');
}

describe('the web page: rent a sandbox from the browser', () => {
  it('loads with offers, live prices and an empty wallet', async () => {
    const response = await page.goto(t.url, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("default-src 'none'");
    await page.getByRole('status').getByText('Ready.').waitFor(STEP);
    await expect.poll(balance).toBe(0);
    await page.getByRole('radio', { name: /small/ }).waitFor(STEP);
    // An image with a long description (debian's is ~100 characters) keeps the form inside its card.
    const long = `debian — ${'Debian 12 with python3, pip, venv, curl, git '.repeat(4)}(239 MiB)`;
    await page.evaluate(`document.querySelector('#image option').textContent = ${JSON.stringify(long)}`);
    const card = await page.locator('#rent').boundingBox();
    const select = await page.locator('#image').boundingBox();
    expect(select && card && select.x + select.width <= card.x + card.width).toBe(true);
    // Default: the first offer (small, 60 sat/hour) for one hour.
    await expect.poll(() => page.locator('#price').textContent()).toBe('60 sat');
    const slider = page.getByLabel(/Duration/);
    await slider.focus();
    await page.keyboard.press('ArrowRight');
    await expect.poll(() => page.locator('#duration-label').textContent()).toBe('2 hours');
    await expect.poll(() => page.locator('#price').textContent()).toBe('120 sat');
    await page.getByRole('radio', { name: /medium/ }).check();
    await expect.poll(() => page.locator('#price').textContent()).toBe('480 sat');
    await page.getByRole('radio', { name: /small/ }).check();
    await slider.focus();
    await page.keyboard.press('ArrowLeft');
    await expect.poll(() => page.locator('#duration-label').textContent()).toBe('1 hour');
    await expect.poll(() => page.locator('#price').textContent()).toBe('60 sat');
    await shot('01-open');
  });

  it('tops up by a Lightning invoice shown as a QR code, minting when it is paid', async () => {
    await page.getByLabel('Top up (sat)').fill('200');
    await page.getByRole('button', { name: 'Get Lightning invoice' }).click();
    const invoice = page.getByLabel('Lightning invoice', { exact: true });
    await expect.poll(() => invoice.inputValue(), STEP).toMatch(/^lnbc/);
    await page.getByRole('img', { name: /QR code/ }).waitFor(STEP);
    await shot('02-invoice');
    await page.getByText('Paid: +200 sat by Lightning.').waitFor(STEP);
    expect(await page.locator('#invoice').isHidden()).toBe(true);
    await expect.poll(balance, STEP).toBe(200);
    await shot('03-topped-up');
  });

  it('rents a sandbox, paying the exact price, and shows a terminal and a countdown', async () => {
    await page.getByRole('button', { name: 'Rent for 60 sat' }).click();
    await page
      .getByRole('status')
      .getByText(/Sandbox lse_\S+ is running\./)
      .waitFor(STEP);
    await expect.poll(balance, STEP).toBe(140);
    await expect
      .poll(() => page.locator('#countdown').textContent(), STEP)
      .toMatch(/^(59:\d\d|1:00:00|01:00:00)$/);
    await expect.poll(() => page.locator('#terminal-state').textContent(), STEP).toBe('connected');
    await shot('04-rented');
  });

  it('runs `uname -a` typed into the terminal and shows its output', async () => {
    await page.locator('#terminal').click();
    // Typed again when nothing answers: keys that come before the shell's line editing may be dropped.
    const keyboard = { write: (text: string) => page.keyboard.type(text, { delay: 20 }) };
    await typeUntil(keyboard, 'uname -a', terminalText, /Linux \S+ \d+\.\d+\S* #\d+/);
    await shot('05-terminal');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator('#terminal').scrollIntoViewIfNeeded();
    await shot('05-terminal-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('lets keyboard users leave the terminal with Esc then Tab, while Tab alone stays with the shell', async () => {
    await page.locator('#terminal').click();
    await page.keyboard.press('Tab');
    expect(await page.evaluate("document.activeElement?.closest('#terminal') !== null")).toBe(true);
    await page.keyboard.press('Escape');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.id')).toBe('extend-minutes');
  });

  it('extends the lease, paying again and moving the deadline', async () => {
    const before = await page.locator('#countdown').getAttribute('datetime');
    await page.getByLabel('Extend by').selectOption('900');
    await page.getByRole('button', { name: 'Extend' }).click();
    await page
      .getByRole('status')
      .getByText(/Extended by 15 minutes/)
      .waitFor(STEP);
    await expect.poll(balance, STEP).toBe(125);
    const after = await page.locator('#countdown').getAttribute('datetime');
    expect(Date.parse(after ?? '') - Date.parse(before ?? '')).toBe(900_000);
  });

  it('stops the sandbox and puts the refund into the wallet', async () => {
    await page.getByRole('button', { name: 'Stop and refund' }).click();
    const refundLine = page.getByText(/^Refund: \d+ sat back in your wallet\.$/);
    await refundLine.waitFor(STEP);
    const refunded = Number(/(\d+)/.exec((await refundLine.textContent()) ?? '')?.[1]);
    // 75 minutes bought at 60 sat/hour, stopped within a minute or two: about 74 sat come back.
    expect(refunded).toBeGreaterThanOrEqual(70);
    expect(refunded).toBeLessThanOrEqual(75);
    await expect.poll(balance, STEP).toBe(125 + refunded);
    expect(await page.locator('#lease').isHidden()).toBe(true);
    await shot('06-stopped');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot('06-stopped-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('takes a pasted Cashu token into the wallet', async () => {
    // Someone else's wallet of the node's mint, paid by Lightning (this node settles after 1.5 s).
    const wallet = new Wallet(t.mintUrl, { unit: 'sat' });
    await wallet.loadMint();
    const quote = await wallet.createMintQuoteBolt11(16);
    await expect
      .poll(async () => (await wallet.checkMintQuoteBolt11(quote.quote)).state, STEP)
      .toBe(MintQuoteState.PAID);
    const proofs = await wallet.mintProofsBolt11(16, quote.quote);
    const token = getEncodedToken({ mint: t.mintUrl, unit: 'sat', proofs });
    const before = await balance();
    await page.getByLabel('Paste a Cashu token').fill(token);
    await page.getByRole('button', { name: 'Receive', exact: true }).click();
    await page.getByRole('status').getByText('Received 16 sat.').waitFor(STEP);
    await expect.poll(balance, STEP).toBe(before + 16);
    // Swapped at the mint: the sender's copy is spent now.
    const states = await wallet.checkProofsStates(proofs);
    expect(states.every((s) => s.state === 'SPENT')).toBe(true);
  });

  it('backs up the whole wallet as one token in one click', async () => {
    await page.getByRole('button', { name: 'Back up wallet' }).click();
    const token = await page.getByLabel(/Backup token/).inputValue();
    const decoded = getDecodedToken(token, t.node.mint.nodePayments().keysetIds());
    expect(decoded.mint).toBe(t.mintUrl);
    const sum = decoded.proofs.reduce((n, p) => n + p.amount.toNumber(), 0);
    expect(sum).toBe(await balance());
  });

  it('keeps the wallet across a reload (ecash in localStorage, no cookies)', async () => {
    const kept = await balance();
    await page.reload({ waitUntil: 'load' });
    await page.getByRole('status').getByText('Ready.').waitFor(STEP);
    await expect.poll(balance, STEP).toBe(kept);
    expect(await context.cookies()).toEqual([]);
  });

  it('replays a paid rent whose answer was lost, on the next visit: one lease, one charge', async () => {
    const before = await balance();
    const leasesUrl = `${t.url}/v1/leases`;
    // The node gets the paid request and creates the lease; the answer never reaches the page.
    await page.route(leasesUrl, async (route) => {
      if (route.request().method() !== 'POST') return route.continue();
      await route.fetch();
      await route.abort('connectionreset');
    });
    await page.getByRole('button', { name: 'Rent for 60 sat' }).click();
    await page
      .getByRole('status')
      .getByText(/payment is kept/)
      .waitFor(STEP);
    await expect.poll(balance, STEP).toBe(before - 60);
    expect(await page.locator('#lease').isHidden()).toBe(true);
    await page.unroute(leasesUrl);

    await page.reload({ waitUntil: 'load' });
    await page.locator('#lease').waitFor({ state: 'visible', ...STEP });
    await expect
      .poll(() => page.locator('#countdown').textContent(), STEP)
      .toMatch(/^(59:\d\d|1:00:00|01:00:00)$/);
    await expect.poll(balance, STEP).toBe(before - 60);
    expect((await t.node.leases?.countByState())?.running).toBe(1);
    await shot('07-recovered');

    await page.getByRole('button', { name: 'Stop and refund' }).click();
    await page.getByText(/^Refund: \d+ sat back in your wallet\.$/).waitFor(STEP);
    expect((await t.node.leases?.countByState())?.running ?? 0).toBe(0);
  });

  it('made no request to any host but the node, and broke no CSP rule', async () => {
    const node = new URL(t.url);
    expect(requested.length).toBeGreaterThan(5);
    expect(requested.some((u) => u.startsWith('ws:'))).toBe(true);
    const elsewhere = requested.filter((u) => {
      const url = new URL(u);
      return url.host !== node.host || !['http:', 'ws:'].includes(url.protocol);
    });
    expect(elsewhere).toEqual([]);
    expect(cspViolations).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
