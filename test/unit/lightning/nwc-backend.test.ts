import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { CursorFile } from '../../../src/lightning/cursor-file.js';
import { NwcBackend } from '../../../src/lightning/nwc/nwc-backend.js';
import { lightningBackendContract } from './lightning-backend.contract.js';
import { NwcTestWallet } from './simulated/nwc-wallet.js';
import { foreignInvoice } from './test-invoices.js';

const sat = (n: number) => Amount.of(n, 'sat');
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

async function wallet(): Promise<{ wallet: NwcTestWallet; cursorPath: string; make: () => NwcBackend }> {
  const w = new NwcTestWallet();
  await w.start();
  cleanup.push(() => w.stop());
  const cursorPath = join(mkdtempSync(join(tmpdir(), 'alacarte-nwc-')), 'nwc.settled_at');
  const make = () => {
    const backend = new NwcBackend({
      url: w.url,
      cursor: new CursorFile(cursorPath),
      payWaitMs: 1_000,
      catchUpMs: 200,
    });
    cleanup.push(() => backend.close());
    return backend;
  };
  return { wallet: w, cursorPath, make };
}

lightningBackendContract('nwc (@getalby/sdk client, NWCWalletService on a test relay)', async () => {
  const { wallet: w, make } = await wallet();
  return {
    backend: make(),
    network: 'bcrt',
    payIncoming: async (bolt11) => w.node.payIncoming(bolt11),
    invoiceToPay: async (amount) => w.node.remoteInvoice(amount.value * 1000n),
    restart: async () => make(),
    holdPayments: {
      hold: () => {
        w.node.holdPayments = true;
      },
      resolve: async (hash, result) => w.node.resolvePayment(hash, result === 'paid' ? 'route' : 'fail'),
    },
    timesPaid: (hash) => w.node.timesPaid.get(hash) ?? 0,
  };
});

describe('NwcBackend', () => {
  it('refuses a connection string that is not nostr+walletconnect', () => {
    expect(
      () => new NwcBackend({ url: 'https://wallet', cursor: new CursorFile('/nonexistent/c') }),
    ).toThrow();
  });

  it('speaks NIP-44 with a wallet that offers it: requests (23194) and notifications (23197)', async () => {
    const { wallet: w, make } = await wallet();
    const backend = make();
    const heard: string[] = [];
    const stop = backend.onSettlement((hash) => heard.push(hash));
    const created = await backend.createInvoice(sat(3), 'nip44');
    w.node.payIncoming(created.bolt11);
    await expect.poll(() => heard).toContain(created.paymentHash);
    stop();
    const requests = w.relay.seen.filter((e) => e.kind === 23194);
    expect(requests.length).toBeGreaterThan(0);
    for (const request of requests) expect(request.tags).toContainEqual(['encryption', 'nip44_v2']);
    expect(w.relay.seen.some((e) => e.kind === 23197)).toBe(true);
    expect(w.relay.seen.some((e) => e.kind === 23196)).toBe(false);
  });

  it('answers a payment the wallet reports failed with failed, having paid nothing', async () => {
    const { wallet: w, make } = await wallet();
    const backend = make();
    const unknown = foreignInvoice({ network: 'bcrt', amountMsat: 4000n });
    expect((await backend.payInvoice(unknown.bolt11, sat(1))).state).toBe('failed');
    expect(w.node.timesPaid.get(unknown.paymentHash)).toBeUndefined();
  });
});

// The same contract against a real wallet, when one is configured (see README "Running it for real").
const real = process.env.NWC_URL;
const peer = process.env.NWC_PEER_URL;
describe.skipIf(!real || !peer)(
  `LightningBackend contract: nwc (real wallet) — ${real ? (peer ? 'configured' : 'skipped: NWC_PEER_URL not set, an outside payer is needed') : 'skipped: NWC_URL not set'}`,
  () => {
    const cursorPath = join(mkdtempSync(join(tmpdir(), 'alacarte-nwc-real-')), 'nwc.settled_at');
    lightningBackendContract('nwc (real wallet)', async () => {
      const backend = new NwcBackend({
        url: real ?? '',
        cursor: new CursorFile(cursorPath),
        expirySeconds: 600,
      });
      const payer = new NwcBackend({ url: peer ?? '', cursor: new CursorFile(`${cursorPath}.peer`) });
      return {
        backend,
        network: (process.env.NWC_NETWORK ?? 'bc') as 'bc',
        payIncoming: async (bolt11) => {
          await payer.payInvoice(bolt11, sat(100));
        },
        invoiceToPay: async (amount) => (await payer.createInvoice(amount, 'alacarte contract')).bolt11,
        restart: async () => new NwcBackend({ url: real ?? '', cursor: new CursorFile(cursorPath) }),
        skipReasons: { holdPayments: 'a real wallet cannot be told to hold a payment' },
      };
    });
  },
);
