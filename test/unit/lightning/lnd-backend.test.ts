import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { decodeBolt11 } from '../../../src/lightning/bolt11.js';
import { CursorFile } from '../../../src/lightning/cursor-file.js';
import { LndBackend } from '../../../src/lightning/lnd/lnd-backend.js';
import { lightningBackendContract } from './lightning-backend.contract.js';
import { selfSignedCert } from './simulated/self-signed.js';
import { SimulatedLnd } from './simulated/simulated-lnd.js';

const sat = (n: number) => Amount.of(n, 'sat');
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

const cert = selfSignedCert();

const cursorPaths = new WeakMap<LndBackend, string>();
const cursorOf = (backend: LndBackend) => cursorPaths.get(backend) ?? '';

async function simulatedLnd(): Promise<{ sim: SimulatedLnd; url: string; make: () => LndBackend }> {
  const sim = new SimulatedLnd(cert, randomBytes(32).toString('hex'));
  const url = await sim.start();
  const cursorPath = join(mkdtempSync(join(tmpdir(), 'alacarte-lnd-')), 'lnd.settle_index');
  const make = () => {
    const backend = new LndBackend({
      url,
      macaroonHex: sim.macaroonHex,
      tlsCertPem: cert.cert,
      cursor: new CursorFile(cursorPath),
      payWaitMs: 400,
      reconnectMs: 50,
    });
    cleanup.push(() => backend.close());
    cursorPaths.set(backend, cursorPath);
    return backend;
  };
  cleanup.push(() => sim.stop());
  return { sim, url, make };
}

lightningBackendContract('lnd (simulated LND REST)', async () => {
  const { sim, make } = await simulatedLnd();
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

describe('LndBackend against the simulated LND REST', () => {
  it('refuses a server whose certificate is not the pinned tls.cert', async () => {
    const { url, sim } = await simulatedLnd();
    const other = selfSignedCert();
    const backend = new LndBackend({
      url,
      macaroonHex: sim.macaroonHex,
      tlsCertPem: other.cert,
      cursor: new CursorFile(join(mkdtempSync(join(tmpdir(), 'alacarte-lnd-')), 'c')),
    });
    cleanup.push(() => backend.close());
    await expect(backend.createInvoice(sat(5), 'x')).rejects.toMatchObject({ code: 'mint_unavailable' });
    expect(sim.node.invoices.size).toBe(0);
    // A payment over a refused connection is unknown, never failed.
    expect((await backend.payInvoice(sim.node.remoteInvoice(5000n), sat(1))).state).toBe('pending');
    expect(sim.node.payments.size).toBe(0);
  });

  it('treats an oversized, garbled or lying answer as the node being unavailable, and a payment as pending', async () => {
    const { sim, make } = await simulatedLnd();
    const backend = make();
    const invoice = sim.node.remoteInvoice(5000n);
    for (const raw of [
      'x'.repeat(5 * 1024 * 1024),
      '{"r_hash": 12, "payment_request": []}',
      'not json',
      JSON.stringify({ r_hash: Buffer.alloc(32).toString('base64'), payment_request: invoice }),
    ]) {
      sim.rawAnswer = raw;
      await expect(backend.createInvoice(sat(5), 'x'), raw.slice(0, 20)).rejects.toMatchObject({
        code: 'mint_unavailable',
      });
      // Never 'paid' on a garbled answer: unpaid, or unavailable (the mint then keeps the quote UNPAID).
      const state = await backend.invoiceState('ab'.repeat(32)).catch((err: { code: string }) => err.code);
      expect(['unpaid', 'mint_unavailable']).toContain(state);
      expect((await backend.payInvoice(invoice, sat(1))).state).toBe('pending');
    }
    sim.rawAnswer = undefined;
    expect((await backend.payInvoice(invoice, sat(1))).state).toBe('paid');
  });

  it('sends the macaroon; a wrong one gets nothing', async () => {
    const { url, sim } = await simulatedLnd();
    const backend = new LndBackend({
      url,
      macaroonHex: 'ab'.repeat(32),
      tlsCertPem: cert.cert,
      cursor: new CursorFile(join(mkdtempSync(join(tmpdir(), 'alacarte-lnd-')), 'c')),
    });
    cleanup.push(() => backend.close());
    await expect(backend.createInvoice(sat(5), 'x')).rejects.toMatchObject({ code: 'mint_unavailable' });
    expect(sim.node.invoices.size).toBe(0);
  });

  it('resubscribes after the stream breaks, from the settle_index it saved', async () => {
    const { sim, make } = await simulatedLnd();
    const backend = make();
    const heard: string[] = [];
    const stop = backend.onSettlement((hash) => heard.push(hash));
    try {
      const first = await backend.createInvoice(sat(1), 'one');
      sim.node.payIncoming(first.bolt11);
      await expect.poll(() => heard).toContain(first.paymentHash);
      // The stream breaks; an invoice settles before the backend is back.
      const missed = await backend.createInvoice(sat(2), 'two');
      sim.dropStreams();
      sim.node.payIncoming(missed.bolt11);
      await expect.poll(() => heard).toContain(missed.paymentHash);
      expect(heard.filter((h) => h === first.paymentHash)).toHaveLength(1);
      expect(new CursorFile(cursorOf(backend)).get()).toBe(2n);
    } finally {
      stop();
    }
  });

  it('keeps a payment whose request got no answer pending, then learns the node never started it', async () => {
    const { sim, make } = await simulatedLnd();
    const backend = make();
    const invoice = sim.node.remoteInvoice(9000n);
    sim.node.stallPayments = true;
    expect(await backend.payInvoice(invoice, sat(2))).toEqual({ state: 'pending' });
    const hash = [...sim.node.payments.keys()][0];
    expect(hash).toBeUndefined();
    sim.node.stallPayments = false;
    const decodedHash = decodeBolt11(invoice)?.paymentHash ?? '';
    expect((await backend.paymentState(decodedHash)).state).toBe('failed');
    // Now it can be paid, exactly once.
    const paid = await backend.payInvoice(invoice, sat(2));
    expect(paid.state).toBe('paid');
    expect(sim.node.timesPaid.get(decodedHash)).toBe(1);
  });
});

// The same contract against a real LND, when one is configured (see README "Running it for real").
const real = process.env.LND_REST_URL;
const peer = process.env.LND_PEER_REST_URL;
describe.skipIf(!real || !peer)(
  `LightningBackend contract: lnd (real node) — ${real ? (peer ? 'configured' : 'skipped: LND_PEER_REST_URL (+ _MACAROON_PATH, _TLS_CERT_PATH) not set, an outside payer is needed') : 'skipped: LND_REST_URL not set'}`,
  () => {
    const fromEnv = (prefix: string, cursorPath: string) =>
      new LndBackend({
        url: process.env[`${prefix}_REST_URL`] ?? '',
        macaroonHex: readFileSync(process.env[`${prefix}_MACAROON_PATH`] ?? '').toString('hex'),
        tlsCertPem: readFileSync(process.env[`${prefix}_TLS_CERT_PATH`] ?? '', 'utf8'),
        cursor: new CursorFile(cursorPath),
        expirySeconds: 600,
      });
    const cursorPath = join(mkdtempSync(join(tmpdir(), 'alacarte-lnd-real-')), 'lnd.settle_index');
    lightningBackendContract('lnd (real node)', async () => {
      const backend = fromEnv('LND', cursorPath);
      const payer = fromEnv('LND_PEER', `${cursorPath}.peer`);
      return {
        backend,
        network: (process.env.LND_NETWORK ?? 'bcrt') as 'bcrt',
        payIncoming: async (bolt11) => {
          await payer.payInvoice(bolt11, sat(100));
        },
        invoiceToPay: async (amount) => (await payer.createInvoice(amount, 'alacarte contract')).bolt11,
        restart: async () => fromEnv('LND', cursorPath),
        skipReasons: { holdPayments: 'a real node cannot be told to hold a payment' },
      };
    });
  },
);
