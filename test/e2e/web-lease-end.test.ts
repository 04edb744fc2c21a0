import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fundedWallet,
  type LeaseTestNode,
  satOffer,
  startLeaseNode,
  startMintNode,
  tokenOf,
} from '../helpers/lease-node.js';
import { ARTIFACTS, launchChromium } from './browser.js';

// What a renter meets when the node, not the renter, ends a lease: the page follows the lease's
// real state without a reload (its time ran out; its sandbox died and the refund comes back by
// itself). Also: the fake-money warning, and a sentence for every token a renter may mistype.

const STEP = { timeout: 30_000 };
let t: LeaseTestNode;
let other: Awaited<ReturnType<typeof startMintNode>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const pageErrors: string[] = [];

/** Sold for exactly 20 seconds, so the test sees one run out. */
const brief = { ...satOffer('brief', 0.1, 360), min_seconds: 20, max_seconds: 20 };

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist/web/index.html'))) {
    throw new Error('the web page is not built: run `npm run build` first (npm test does)');
  }
  other = await startMintNode();
  t = await startLeaseNode({ offers: [satOffer('small', 0.1, 60), brief] });
  browser = await launchChromium();
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
  page.on('pageerror', (err) => pageErrors.push(String(err)));
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
  await other?.close();
});

async function balance(): Promise<number> {
  const text = (await page.locator('#balance').textContent()) ?? '';
  const match = /^(\d+) sat$/.exec(text.trim());
  if (!match) throw new Error(`balance shows "${text}"`);
  return Number(match[1]);
}

const status = () => page.locator('#status').textContent();

async function paste(token: string): Promise<void> {
  await page.getByLabel('Paste a Cashu token').fill(token);
  await page.getByRole('button', { name: 'Receive', exact: true }).click();
}

/** The lease id the page shows once a rent went through. */
async function rent(offer: RegExp, label: RegExp, step?: number): Promise<string> {
  await page.getByRole('radio', { name: offer }).check();
  // The duration slider's step (for `small`: 60 s, 5 min, 15 min, 30 min, 1 hour…).
  if (step !== undefined) await page.getByLabel(/Duration/).fill(String(step));
  await page.getByRole('button', { name: label }).click();
  await page
    .getByRole('status')
    .getByText(/Sandbox lse_\S+ is running\./)
    .waitFor(STEP);
  await expect.poll(() => page.locator('#terminal-state').textContent(), STEP).toBe('connected');
  return (await page.locator('#lease-id').textContent()) ?? '';
}

describe('the web page follows what the node does to the lease', () => {
  it('warns that no real money moves while the fake Lightning backend runs', async () => {
    await page.goto(t.url, { waitUntil: 'load' });
    await page.getByRole('status').getByText('Ready.').waitFor(STEP);
    const warning = page.locator('#test-money');
    await warning.waitFor({ state: 'visible', ...STEP });
    expect(await warning.textContent()).toMatch(/No real money\s+moves here/);
  });

  it('answers every token a renter may paste with a sentence, never a library message', async () => {
    await paste('hello');
    await expect.poll(status).toBe('That is not a Cashu token: a token starts with “cashuA” or “cashuB”.');
    // A token cut short while copying (the raw error was an `atob` exception).
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 64);
    const good = await tokenOf(wallet, t.mintUrl, proofs, 64);
    await paste(good.token.slice(0, 40));
    await expect
      .poll(status)
      .toBe('That token is damaged or incomplete: copy it again, all of it, and paste it.');
    await paste(`${good.token.slice(0, 30)}!!${good.token.slice(32)}`);
    await expect.poll(status).toMatch(/^That token is damaged or incomplete/);
    // Another mint's token (the raw error was "Couldn't map short keyset ID").
    const foreign = await fundedWallet(other.mintUrl, 8);
    const elsewhere = await tokenOf(foreign.wallet, other.mintUrl, foreign.proofs, 8);
    await paste(elsewhere.token);
    await expect
      .poll(status)
      .toBe(
        `That token is from another mint (${other.mintUrl}); this wallet holds only ecash of ${t.mintUrl}. Receive it in a wallet of that mint.`,
      );
    // The good one goes in; pasting it again is "already spent", said as such.
    await paste(good.token);
    await expect.poll(status, STEP).toBe('Received 64 sat.');
    await paste(good.token);
    await expect
      .poll(status, STEP)
      .toBe('This ecash was already spent: it was received before, maybe by another wallet.');
    expect(await page.locator('#status').getAttribute('class')).toContain('error');
    await expect.poll(balance).toBe(64);
  });

  it('shows a lease whose time ran out as expired, and Rent works again without a reload', async () => {
    const id = await rent(/brief/, /^Rent for 2 sat$/);
    await expect.poll(balance, STEP).toBe(62);
    // The deadline passes (20 s): the header, the lease card and Rent follow by themselves.
    await page
      .getByRole('status')
      .getByText(new RegExp(`Your sandbox ${id} expired at .+: its time was used up\\.`))
      .waitFor({ timeout: 60_000 });
    expect(await page.locator('#lease').isHidden()).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'lease-expired.png'), fullPage: true });
    const next = await rent(/small/, /^Rent for 60 sat$/, 4);
    expect(next).not.toBe(id);
    await expect.poll(balance, STEP).toBe(2);
  });

  it('collects the refund of a lease whose sandbox died, without anyone pressing Stop', async () => {
    const id = (await page.locator('#lease-id').textContent()) ?? '';
    // The sandbox dies under the node (killed from outside, out of memory…): the node ends the
    // lease with its unused time refunded; the page notices and takes the refund.
    await t.driver.stop({ leaseId: id });
    const line = page
      .getByRole('status')
      .getByText(new RegExp(`Your sandbox ${id} stopped before its time .+; (\\d+) sat for the unused time`));
    await line.waitFor({ timeout: 30_000 });
    const refunded = Number(/; (\d+) sat for/.exec((await line.textContent()) ?? '')?.[1]);
    expect(refunded).toBeGreaterThanOrEqual(58);
    expect(refunded).toBeLessThanOrEqual(60);
    await expect.poll(balance, STEP).toBe(2 + refunded);
    expect(await page.locator('#lease').isHidden()).toBe(true);
    expect(await page.getByText(`Refund: ${refunded} sat back in your wallet.`).count()).toBe(1);
    // A reload finds nothing held and takes nothing twice.
    await page.reload({ waitUntil: 'load' });
    await page.getByRole('status').getByText('Ready.').waitFor(STEP);
    await expect.poll(balance, STEP).toBe(2 + refunded);
  });

  it('says the expiry also when Stop is pressed on a lease that just ran out', async () => {
    const { wallet, proofs } = await fundedWallet(t.mintUrl, 40);
    await paste((await tokenOf(wallet, t.mintUrl, proofs, 40)).token);
    await expect.poll(status, STEP).toBe('Received 40 sat.');
    const id = await rent(/brief/, /^Rent for 2 sat$/);
    // The page's own look at the lease fails until Stop is pressed, so Stop meets the ended lease.
    let stopped = false;
    await page.route(`${t.url}/v1/leases/${id}`, (route) => {
      if (route.request().method() === 'DELETE') stopped = true;
      return route.request().method() === 'GET' && !stopped
        ? route.abort('connectionrefused')
        : route.continue();
    });
    await expect
      .poll(async () => (await t.node.leases?.countByState())?.expired, { timeout: 60_000 })
      .toBe(2);
    expect(await page.locator('#lease').isVisible()).toBe(true);
    await page.getByRole('button', { name: 'Stop and refund' }).click();
    await page
      .getByRole('status')
      .getByText(new RegExp(`Your sandbox ${id} expired at`))
      .waitFor(STEP);
    expect(stopped).toBe(true);
    expect(await page.locator('#lease').isHidden()).toBe(true);
    expect(await page.locator('#status').getAttribute('class')).not.toContain('error');
    expect(pageErrors).toEqual([]);
  });
});
