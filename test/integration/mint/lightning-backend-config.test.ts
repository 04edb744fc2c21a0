import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config.js';
import { createLightningBackend, LightningConfigError } from '../../../src/lightning/create-backend.js';
import { AlacarteNode } from '../../../src/node.js';
import { selfSignedCert } from '../../unit/lightning/simulated/self-signed.js';
import { SimulatedLnd } from '../../unit/lightning/simulated/simulated-lnd.js';

const dirs: string[] = [];
const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-ln-'));
  dirs.push(dir);
  return dir;
}

describe('mint.lightning configuration', () => {
  it('defaults to the fake backend, and asks for the settings of a real one', () => {
    expect(loadConfig().mint.lightning.backend).toBe('fake');
    expect(() => loadConfig({ flags: { mint: { lightning: { backend: 'lnd' } } } })).toThrow(ConfigError);
    expect(() => loadConfig({ flags: { mint: { lightning: { backend: 'other' as 'lnd' } } } })).toThrow(
      ConfigError,
    );
    expect(() =>
      loadConfig({
        flags: {
          mint: {
            lightning: {
              backend: 'lnd',
              lnd: { url: 'http://127.0.0.1:8080', macaroonPath: 'm', tlsCertPath: 'c' },
            },
          },
        },
      }),
    ).toThrow(/lnd\.url/);
  });

  it('reads secrets from files or the environment and never puts them in its errors', async () => {
    const dir = tempDir();
    const nwcSecret = `nostr+walletconnect://${'a'.repeat(64)}?relay=wss%3A%2F%2Frelay&secret=${'b'.repeat(64)}`;
    writeFileSync(join(dir, 'nwc'), `${nwcSecret}\n`);
    const nwc = createLightningBackend(
      loadConfig({ flags: { mint: { lightning: { backend: 'nwc', nwc: { urlPath: join(dir, 'nwc') } } } } })
        .mint.lightning,
      dir,
      {},
    );
    expect(nwc.backend.id).toBe('nwc');
    expect(nwc.backend.isTestBackend).toBe(false);
    const fromEnv = createLightningBackend(
      loadConfig({ flags: { mint: { lightning: { backend: 'nwc' } } } }).mint.lightning,
      dir,
      {
        ALACARTE_NWC_URL: nwcSecret,
      },
    );
    expect(fromEnv.backend.id).toBe('nwc');
    const cln = loadConfig({
      flags: { mint: { lightning: { backend: 'cln', cln: { url: 'https://127.0.0.1:3010' } } } },
    });
    expect(() => createLightningBackend(cln.mint.lightning, dir, {})).toThrow(LightningConfigError);
    expect(
      createLightningBackend(cln.mint.lightning, dir, { ALACARTE_CLN_RUNE: 'secret-rune' }).backend.id,
    ).toBe('cln');
    // A connection string that is not NWC: refused without echoing it.
    expect(() =>
      createLightningBackend(
        loadConfig({ flags: { mint: { lightning: { backend: 'nwc' } } } }).mint.lightning,
        dir,
        {
          ALACARTE_NWC_URL: 'https://secret-value',
        },
      ),
    ).toThrow(expect.objectContaining({ message: expect.not.stringContaining('secret-value') }));
    const lnd = loadConfig({
      flags: {
        mint: {
          lightning: {
            backend: 'lnd',
            lnd: {
              url: 'https://127.0.0.1:8080',
              macaroonPath: join(dir, 'missing'),
              tlsCertPath: join(dir, 'x'),
            },
          },
        },
      },
    });
    expect(() => createLightningBackend(lnd.mint.lightning, dir, {})).toThrow(/cannot read the LND macaroon/);
    writeFileSync(join(dir, 'tls.cert'), selfSignedCert().cert);
    const lndEnv = loadConfig({
      flags: {
        mint: {
          lightning: {
            backend: 'lnd',
            lnd: { url: 'https://127.0.0.1:8080', tlsCertPath: join(dir, 'tls.cert') },
          },
        },
      },
    });
    expect(() =>
      createLightningBackend(lndEnv.mint.lightning, dir, { ALACARTE_LND_MACAROON: 'not-hex-secret' }),
    ).toThrow(expect.objectContaining({ message: expect.not.stringContaining('not-hex-secret') }));
    const running = createLightningBackend(lndEnv.mint.lightning, dir, { ALACARTE_LND_MACAROON: '0201abcd' });
    expect(running.backend.id).toBe('lnd');
    await running.close();
  });
});

describe('a node whose mint runs on LND (simulated LND REST)', () => {
  it('says so in /mint/v1/info, invoices through LND and sees the payment', async () => {
    const tls = selfSignedCert();
    const sim = new SimulatedLnd(tls, randomBytes(32).toString('hex'));
    const url = await sim.start();
    cleanup.push(() => sim.stop());
    const dir = tempDir();
    writeFileSync(join(dir, 'admin.macaroon'), Buffer.from(sim.macaroonHex, 'hex'));
    writeFileSync(join(dir, 'tls.cert'), tls.cert);
    const config = loadConfig({
      flags: {
        port: 0,
        host: '127.0.0.1',
        dataDir: join(dir, 'data'),
        logLevel: 'silent',
        mint: {
          lightning: {
            backend: 'lnd',
            lnd: { url, macaroonPath: join(dir, 'admin.macaroon'), tlsCertPath: join(dir, 'tls.cert') },
          },
        },
      },
    });
    const node = await AlacarteNode.create(config);
    cleanup.push(() => node.close());
    const { mintUrl } = await node.listen();
    const info = (await (await fetch(`${mintUrl}/v1/info`)).json()) as { description: string };
    expect(info.description).toContain('Lightning: lnd');
    expect(info.description).not.toMatch(/TEST MINT/);
    const quote = (await (
      await fetch(`${mintUrl}/v1/mint/quote/bolt11`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ amount: 21, unit: 'sat' }),
      })
    ).json()) as { quote: string; request: string; state: string };
    expect(quote.state).toBe('UNPAID');
    expect([...sim.node.invoices.values()].map((i) => i.bolt11)).toEqual([quote.request]);
    // The mint listens to LND's invoice stream from the start.
    await expect.poll(() => sim.subscriptions).toBe(1);
    sim.node.payIncoming(quote.request);
    await expect
      .poll(
        async () =>
          (
            (await (await fetch(`${mintUrl}/v1/mint/quote/bolt11/${quote.quote}`)).json()) as {
              state: string;
            }
          ).state,
      )
      .toBe('PAID');
  });
});
