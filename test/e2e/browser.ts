import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

/** Debian's chromium, installed by scripts/setup.sh: no browser download at install time. */
export const CHROMIUM = '/usr/bin/chromium';

/** Screenshots of each step land here (git-ignored), for people to look at. */
export const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'e2e');

/**
 * Headless Chromium with a fresh profile and nothing that phones home on its own (no component
 * updates, sync, background networking or QUIC), so every request it makes comes from the page.
 */
export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'alacarte-chromium-'));
  // Playwright wants the profile as launchPersistentContext's argument, not as --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
