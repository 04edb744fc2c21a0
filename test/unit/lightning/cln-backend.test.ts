import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { decodeBolt11 } from '../../../src/lightning/bolt11.js';
import { ClnBackend } from '../../../src/lightning/cln/cln-backend.js';
import { CursorFile } from '../../../src/lightning/cursor-file.js';
import { lightningBackendContract } from './lightning-backend.contract.js';
import { selfSignedCert } from './simulated/self-signed.js';
import { SimulatedCln } from './simulated/simulated-cln.js';
import { foreignInvoice } from './test-invoices.js';

const sat = (n: number) => Amount.of(n, 'sat');
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

const cert = selfSignedCert();

async function simulatedCln(): Promise<{
  sim: SimulatedCln;
  url: string;
  cursorPath: string;
  make: () => ClnBackend;
}> {
  const sim = new SimulatedCln(cert, randomBytes(24).toString('base64url'));
  const url = await sim.start();
  const cursorPath = join(mkdtempSync(join(tmpdir(), 'alacarte-cln-')), 'cln.pay_index');
  const make = () => {
    const backend = new ClnBackend({
      url,
      rune: sim.rune,
      tlsCertPem: cert.cert,
      cursor: new CursorFile(cursorPath),
      payWaitMs: 400,
      reconnectMs: 50,
    });
    cleanup.push(() => backend.close());
    return backend;
  };
  cleanup.push(() => sim.stop());
  return { sim, url, cursorPath, make };
}

lightningBackendContract('cln (simulated clnrest)', async () => {
  const { sim, make } = await simulatedCln();
  return {
    backend: make(),
    network: 'bcrt',
    payIncoming: async (bolt11) => sim.node.payIncoming(bolt11),
    invoiceToPay: async (amount) => sim.node.remoteInvoice(amount.value * 1000n),
    restart: async () => make(),
    holdPayments: {
      hold: () => {
        sim.node.holdPayments = true;
      },
      resolve: async (hash, result) => sim.node.resolvePayment(hash, result === 'paid' ? 'route' : 'fail'),
    },
    timesPaid: (hash) => sim.node.timesPaid.get(hash) ?? 0,
  };
});

describe('ClnBackend against the simulated clnrest', () => {
  it('sends the rune; a wrong one gets nothing', async () => {
    const { url, sim } = await simulatedCln();
    const backend = new ClnBackend({
      url,
      rune: 'not-the-rune',
      tlsCertPem: cert.cert,
      cursor: new CursorFile(join(mkdtempSync(join(tmpdir(), 'alacarte-cln-')), 'c')),
    });
    cleanup.push(() => backend.close());
    await expect(backend.createInvoice(sat(5), 'x')).rejects.toMatchObject({ code: 'mint_unavailable' });
    expect(sim.node.invoices.size).toBe(0);
  });

  it('refuses a server whose certificate is not the pinned one', async () => {
    const { url, sim } = await simulatedCln();
    const backend = new ClnBackend({
      url,
      rune: sim.rune,
      tlsCertPem: selfSignedCert().cert,
      cursor: new CursorFile(join(mkdtempSync(join(tmpdir(), 'alacarte-cln-')), 'c')),
    });
    cleanup.push(() => backend.close());
    await expect(backend.createInvoice(sat(5), 'x')).rejects.toMatchObject({ code: 'mint_unavailable' });
    expect((await backend.payInvoice(sim.node.remoteInvoice(5000n), sat(1))).state).toBe('pending');
    expect(sim.node.payments.size).toBe(0);
  });

  it('saves the pay_index of every settlement it hears and asks from there after a break', async () => {
    const { sim, make, cursorPath } = await simulatedCln();
    const backend = make();
    const heard: string[] = [];
    const stop = backend.onSettlement((hash) => heard.push(hash));
    try {
      const first = await backend.createInvoice(sat(1), 'one');
      sim.node.payIncoming(first.bolt11);
      await expect.poll(() => heard).toContain(first.paymentHash);
      const second = await backend.createInvoice(sat(2), 'two');
      sim.node.payIncoming(second.bolt11);
      await expect.poll(() => heard).toContain(second.paymentHash);
      expect(heard.filter((h) => h === first.paymentHash)).toHaveLength(1);
      expect(new CursorFile(cursorPath).get()).toBe(2n);
    } finally {
      stop();
    }
  });

  it('answers a definite xpay failure with failed, and an unknown end with pending', async () => {
    const { sim, make } = await simulatedCln();
    const backend = make();
    // Nobody knows this invoice's preimage: the destination rejects it (203).
    const unknown = foreignInvoice({
      network: 'bcrt',
      amountMsat: 4000n,
    });
    expect((await backend.payInvoice(unknown.bolt11, sat(1))).state).toBe('failed');
    const invoice = sim.node.remoteInvoice(9000n);
    sim.node.stallPayments = true;
    expect(await backend.payInvoice(invoice, sat(2))).toEqual({ state: 'pending' });
    sim.node.stallPayments = false;
    const hash = decodeBolt11(invoice)?.paymentHash ?? '';
    expect((await backend.paymentState(hash)).state).toBe('failed');
    expect((await backend.payInvoice(invoice, sat(2))).state).toBe('paid');
    expect(sim.node.timesPaid.get(hash)).toBe(1);
  });
});

// The same contract against a real CLN, when one is configured (see README "Running it for real").
const real = process.env.CLN_REST_URL;
const peer = process.env.CLN_PEER_REST_URL;
describe.skipIf(!real || !peer)(
  `LightningBackend contract: cln (real node) — ${real ? (peer ? 'configured' : 'skipped: CLN_PEER_REST_URL (+ CLN_PEER_RUNE) not set, an outside payer is needed') : 'skipped: CLN_REST_URL not set'}`,
  () => {
    const fromEnv = (prefix: string, cursorPath: string) => {
      const certPath = process.env[`${prefix}_TLS_CERT_PATH`];
      return new ClnBackend({
        url: process.env[`${prefix}_REST_URL`] ?? '',
        rune: process.env[`${prefix}_RUNE`] ?? '',
        ...(certPath ? { tlsCertPem: readFileSync(certPath, 'utf8') } : {}),
        cursor: new CursorFile(cursorPath),
        expirySeconds: 600,
      });
    };
    const cursorPath = join(mkdtempSync(join(tmpdir(), 'alacarte-cln-real-')), 'cln.pay_index');
    lightningBackendContract('cln (real node)', async () => {
      const backend = fromEnv('CLN', cursorPath);
      const payer = fromEnv('CLN_PEER', `${cursorPath}.peer`);
      return {
        backend,
        network: (process.env.CLN_NETWORK ?? 'bcrt') as 'bcrt',
        payIncoming: async (bolt11) => {
          await payer.payInvoice(bolt11, sat(100));
        },
        invoiceToPay: async (amount) => (await payer.createInvoice(amount, 'alacarte contract')).bolt11,
        restart: async () => fromEnv('CLN', cursorPath),
        skipReasons: { holdPayments: 'a real node cannot be told to hold a payment' },
      };
    });
  },
);
