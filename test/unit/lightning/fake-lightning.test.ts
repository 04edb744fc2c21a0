import { appendFileSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cashu from '@cashu/cashu-ts';
import fc from 'fast-check';
import secp256k1 from 'secp256k1';
import { describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { decodeBolt11 } from '../../../src/lightning/bolt11.js';
import { FakeJournal } from '../../../src/lightning/fake/fake-journal.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { lightningBackendContract } from './lightning-backend.contract.js';
import { foreignInvoice, manualClock, seededRandom, sha256Hex } from './test-invoices.js';

const sat = (n: bigint | number) => Amount.of(n, 'sat');
const HOUR = 3_600_000;

// Outside payers are simulated by the settle delay: the harness lets it pass on the manual clock.
lightningBackendContract('fake (settle delay, manual clock)', async () => {
  const clock = manualClock();
  // As the node runs it: its key and a journal of its invoices in the data directory.
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-fake-ln-'));
  const nodeKey = seededRandom('fake contract')(32);
  const make = () =>
    new FakeLightningBackend({
      now: clock.now,
      settleDelayMs: 60_000,
      nodeKey,
      journal: new FakeJournal(join(dir, 'fake-invoices.jsonl'), 1000),
    });
  const backend = make();
  return {
    backend,
    network: 'bcrt',
    payIncoming: async () => clock.advance(60_000),
    // A foreign invoice would get a made-up preimage; the fake's own ones settle internally with the real one.
    invoiceToPay: async (amount) => (await backend.createInvoice(amount, 'melt')).bolt11,
    restart: async () => make(),
    skipReasons: {
      holdPayments: "the fake's payments end by its clock (payDelayMs), tested in its own cases below",
    },
  };
});

describe('the fake backend across a restart (its journal)', () => {
  it('still knows the invoices it issued and which it paid itself; a torn last line is skipped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-fake-ln-'));
    const path = join(dir, 'fake-invoices.jsonl');
    const nodeKey = seededRandom('fake journal')(32);
    // Invoices never settle by themselves here: only paying them does.
    const make = () =>
      new FakeLightningBackend({ nodeKey, settleDelayMs: 3_600_000, journal: new FakeJournal(path, 1000) });
    const first = make();
    const paid = await first.createInvoice(sat(21), 'paid before the crash');
    const unpaid = await first.createInvoice(sat(22), 'never paid');
    const outcome = await first.payInvoice(paid.bolt11, sat(0));
    expect(outcome.state).toBe('paid');
    appendFileSync(path, '{"h": "torn');

    const second = make();
    expect(await second.invoiceState(paid.paymentHash)).toBe('paid');
    expect(await second.invoiceState(unpaid.paymentHash)).toBe('unpaid');
    expect(await second.invoiceState('0'.repeat(64))).toBe('expired');
    // The same key: its old invoices are still its own, paid internally with the real preimage.
    const later = await second.payInvoice(unpaid.bolt11, sat(0));
    if (later.state !== 'paid') throw new Error(`paid: ${JSON.stringify(later)}`);
    expect(sha256Hex(later.preimage)).toBe(unpaid.paymentHash);
    expect(await make().invoiceState(unpaid.paymentHash)).toBe('paid');
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('rewrites its file once it holds more than twice the invoices it keeps', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-fake-ln-'));
    const path = join(dir, 'fake-invoices.jsonl');
    const backend = new FakeLightningBackend({ maxEntries: 5, journal: new FakeJournal(path, 5) });
    const created = [];
    for (let i = 0; i < 30; i++) created.push(await backend.createInvoice(sat(1 + i), `n${i}`));
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    expect(lines.length).toBeLessThanOrEqual(11);
    const reloaded = new FakeJournal(path, 5).load();
    expect([...reloaded.keys()]).toEqual(created.slice(-5).map((c) => c.paymentHash));
  });
});

describe('FakeLightningBackend', () => {
  it('says it is a test backend', () => {
    const backend = new FakeLightningBackend();
    expect(backend.id).toBe('fake');
    expect(backend.isTestBackend).toBe(true);
  });

  it('settles its invoices at once by default, on regtest, signed by its node key', async () => {
    const nodeKey = Buffer.alloc(32, 7);
    const backend = new FakeLightningBackend({ nodeKey });
    const created = await backend.createInvoice(sat(21), 'coffee');
    expect(created.bolt11.startsWith('lnbcrt210n1')).toBe(true);
    const decoded = decodeBolt11(created.bolt11);
    const pubkey = Buffer.from(secp256k1.publicKeyCreate(nodeKey, true)).toString('hex');
    expect(decoded?.payeeNodeKey).toBe(pubkey);
    expect(backend.nodePubkey).toBe(pubkey);
    expect(await backend.invoiceState(created.paymentHash)).toBe('paid');
  });

  it('issues invoices for the configured network', async () => {
    for (const network of ['bc', 'tb', 'tbs', 'sb'] as const) {
      const created = await new FakeLightningBackend({ network }).createInvoice(sat(1000), '');
      expect(created.bolt11.startsWith(`ln${network}10u1`)).toBe(true);
      expect(decodeBolt11(created.bolt11)?.network).toBe(network);
    }
  });

  it('pays no invoice of another chain, as a real node would not', async () => {
    const regtest = new FakeLightningBackend();
    const mainnet = foreignInvoice({ network: 'bc', amountMsat: 5000n });
    expect(await regtest.payInvoice(mainnet.bolt11, sat(1))).toEqual({
      state: 'failed',
      reason: "the invoice is for mainnet (lnbc…), this node's Lightning is on regtest",
    });
    expect(await regtest.paymentState(mainnet.paymentHash)).toMatchObject({ state: 'failed' });
    const sameChain = foreignInvoice({ network: 'bcrt', amountMsat: 5000n });
    expect((await regtest.payInvoice(sameChain.bolt11, sat(1))).state).toBe('paid');
  });

  it('is reproducible from its injected clock and random source', async () => {
    const make = () => new FakeLightningBackend({ now: manualClock().now, randomBytes: seededRandom('s') });
    const a = await make().createInvoice(sat(5), 'same');
    const b = await make().createInvoice(sat(5), 'same');
    expect(a).toEqual(b);
  });

  it('settles after the configured delay, measured on the injected clock', async () => {
    const clock = manualClock();
    const backend = new FakeLightningBackend({ now: clock.now, settleDelayMs: 5_000 });
    const { paymentHash } = await backend.createInvoice(sat(10), '');
    clock.advance(4_999);
    expect(await backend.invoiceState(paymentHash)).toBe('unpaid');
    clock.advance(1);
    expect(await backend.invoiceState(paymentHash)).toBe('paid');
    clock.advance(10 * HOUR);
    expect(await backend.invoiceState(paymentHash)).toBe('paid');
  });

  it('expires an invoice left unpaid, at the expiry written in it', async () => {
    const clock = manualClock(Date.UTC(2026, 0, 1, 0, 0, 0, 500));
    const backend = new FakeLightningBackend({ now: clock.now, settleDelayMs: HOUR, expirySeconds: 60 });
    const created = await backend.createInvoice(sat(10), '');
    // The invoice timestamp is whole seconds, so the expiry counts from the second the clock is in.
    expect(created.expiresAt.getTime()).toBe(Date.UTC(2026, 0, 1, 0, 1, 0));
    expect(decodeBolt11(created.bolt11)?.expiresAt).toEqual(created.expiresAt);
    clock.advance(59_499);
    expect(await backend.invoiceState(created.paymentHash)).toBe('unpaid');
    clock.advance(1);
    expect(await backend.invoiceState(created.paymentHash)).toBe('expired');
    clock.advance(HOUR);
    expect(await backend.invoiceState(created.paymentHash)).toBe('expired');
    expect((await backend.payInvoice(created.bolt11, sat(0))).state).toBe('failed');
  });

  it('expires invoices by default after an hour', async () => {
    const clock = manualClock();
    const backend = new FakeLightningBackend({ now: clock.now, settleDelayMs: 2 * HOUR });
    const created = await backend.createInvoice(sat(10), '');
    expect(created.expiresAt.getTime()).toBe(clock.now() + HOUR);
  });

  it('settles its own invoice internally when asked to pay it, before its settle delay', async () => {
    const clock = manualClock();
    const backend = new FakeLightningBackend({ now: clock.now, settleDelayMs: HOUR });
    const created = await backend.createInvoice(sat(64), 'melt to self');
    const outcome = await backend.payInvoice(created.bolt11, sat(2));
    expect(outcome).toEqual({ state: 'paid', preimage: expect.any(String), feePaid: Amount.zero('sat') });
    expect(outcome.state === 'paid' && sha256Hex(outcome.preimage)).toBe(created.paymentHash);
    expect(await backend.invoiceState(created.paymentHash)).toBe('paid');
  });

  it("pays anyone else's invoice with a made-up preimage, since no money moves", async () => {
    const backend = new FakeLightningBackend();
    const other = foreignInvoice({ network: 'bcrt', amountMsat: 1_234_567n });
    const outcome = await backend.payInvoice(other.bolt11, sat(0));
    expect(outcome.state).toBe('paid');
    expect(outcome.state === 'paid' && outcome.preimage).toMatch(/^[0-9a-f]{64}$/);
    expect(outcome.state === 'paid' && sha256Hex(outcome.preimage)).not.toBe(other.paymentHash);
    expect(await backend.paymentState(other.paymentHash)).toEqual(outcome);
  });

  it('does not settle its own invoice for a foreign invoice that copies its payment hash', async () => {
    const clock = manualClock();
    const backend = new FakeLightningBackend({ now: clock.now, settleDelayMs: HOUR });
    const mine = await backend.createInvoice(sat(1000), 'quote');
    const copy = foreignInvoice({ network: 'bcrt', amountMsat: 1000n, paymentHash: mine.paymentHash });
    const outcome = await backend.payInvoice(copy.bolt11, sat(0));
    expect(outcome.state === 'paid' && sha256Hex(outcome.preimage)).not.toBe(mine.paymentHash);
    expect(await backend.invoiceState(mine.paymentHash)).toBe('unpaid');
  });

  it('keeps a payment pending until payDelayMs has passed', async () => {
    const clock = manualClock();
    const backend = new FakeLightningBackend({ now: clock.now, payDelayMs: 30_000 });
    const other = foreignInvoice({ network: 'bcrt', amountMsat: 5000n, timestamp: clock.now() / 1000 });
    expect(await backend.payInvoice(other.bolt11, sat(1))).toEqual({ state: 'pending' });
    clock.advance(29_999);
    expect(await backend.paymentState(other.paymentHash)).toEqual({ state: 'pending' });
    expect(await backend.payInvoice(other.bolt11, sat(1))).toEqual({ state: 'pending' });
    clock.advance(1);
    expect((await backend.paymentState(other.paymentHash)).state).toBe('paid');
  });

  it('fails the payments its payFails hook picks', async () => {
    const doomed = foreignInvoice({ network: 'bcrt', amountMsat: 1000n });
    const fine = foreignInvoice({ network: 'bcrt', amountMsat: 1000n });
    const backend = new FakeLightningBackend({ payFails: (b) => b === doomed.bolt11 });
    expect((await backend.payInvoice(doomed.bolt11, sat(1))).state).toBe('failed');
    expect((await backend.paymentState(doomed.paymentHash)).state).toBe('failed');
    expect((await backend.payInvoice(fine.bolt11, sat(1))).state).toBe('paid');
  });

  it('forgets the oldest invoices beyond maxEntries', async () => {
    const backend = new FakeLightningBackend({ maxEntries: 3 });
    const created = [];
    for (let i = 0; i < 4; i++) created.push(await backend.createInvoice(sat(1), `${i}`));
    const states = await Promise.all(created.map((c) => backend.invoiceState(c.paymentHash)));
    expect(states).toEqual(['expired', 'paid', 'paid', 'paid']);
  });

  it('refuses a node key that is not a secp256k1 private key', () => {
    expect(() => new FakeLightningBackend({ nodeKey: Buffer.alloc(32) })).toThrow(RangeError);
    expect(() => new FakeLightningBackend({ nodeKey: Buffer.alloc(31, 1) })).toThrow(RangeError);
  });

  it('writes amounts that cashu-ts reads back exactly, as its wallet checks mint quotes', async () => {
    // cashu-ts compares a quote's invoice with this function; it ships at runtime but not in its types.
    const amountMsat = (cashu as unknown as { bolt11AmountMsat?: (invoice: string) => bigint | null })
      .bolt11AmountMsat;
    expect(typeof amountMsat).toBe('function');
    const backend = new FakeLightningBackend();
    await fc.assert(
      fc.asyncProperty(fc.bigInt({ min: 1n, max: 2_100_000_000_000_000n }), async (amount) => {
        const { bolt11 } = await backend.createInvoice(sat(amount), '');
        expect(amountMsat?.(bolt11)).toBe(amount * 1000n);
        expect(decodeBolt11(bolt11)?.amountMsat).toBe(amount * 1000n);
      }),
      { numRuns: 200 },
    );
  });
});

describe('decodeBolt11', () => {
  // BOLT 11 spec examples, signed by the spec's key 03e7156a…
  const SPEC_COFFEE =
    'lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh';
  const SPEC_DONATION =
    'lnbc1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq9qrsgq357wnc5r2ueh7ck6q93dj32dlqnls087fxdwk8qakdyafkq3yap9us6v52vjjsrvywa6rt52cm9r9zqt8r2t7mlcwspyetp5h2tztugp9lfyql';
  const SPEC_KEY = '03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad';
  const SPEC_HASH = '0001020304050607080900010203040506070809000102030405060708090102';

  it('reads the spec examples', () => {
    expect(decodeBolt11(SPEC_COFFEE)).toEqual({
      amountMsat: 250_000_000n,
      paymentHash: SPEC_HASH,
      expiresAt: new Date((1_496_314_658 + 60) * 1000),
      network: 'bc',
      payeeNodeKey: SPEC_KEY,
      description: '1 cup coffee',
    });
    // No amount, and no expiry field: BOLT11's default of an hour applies.
    expect(decodeBolt11(SPEC_DONATION)).toMatchObject({
      amountMsat: undefined,
      expiresAt: new Date((1_496_314_658 + 3600) * 1000),
      payeeNodeKey: SPEC_KEY,
    });
    expect(decodeBolt11(SPEC_COFFEE.toUpperCase())?.amountMsat).toBe(250_000_000n);
  });

  it('rejects every single-character corruption of a valid invoice', () => {
    const charset = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
    for (let i = 0; i < SPEC_COFFEE.length; i++) {
      const c = SPEC_COFFEE[i] ?? '';
      const other = charset[(charset.indexOf(c) + 1) % charset.length] ?? 'q';
      expect(
        decodeBolt11(`${SPEC_COFFEE.slice(0, i)}${other}${SPEC_COFFEE.slice(i + 1)}`),
        `at ${i}`,
      ).toBeUndefined();
    }
  });

  it('rejects non-strings, unknown networks, oversized and mixed-case input', () => {
    for (const bad of [undefined, null, 42, {}, ['lnbc'], `${SPEC_COFFEE}${'q'.repeat(5000)}`]) {
      expect(decodeBolt11(bad)).toBeUndefined();
    }
    expect(decodeBolt11(SPEC_COFFEE.replace('lnbc', 'lnxy'))).toBeUndefined();
    expect(decodeBolt11(`L${SPEC_COFFEE.slice(1)}`)).toBeUndefined();
  });

  it('never throws on arbitrary input', () => {
    const prefixed = fc
      .tuple(
        fc.constantFrom('ln', 'lnbc', 'lnbcrt1', 'lntbs', 'lnbc10u1', 'lnbc0'),
        fc.string({ maxLength: 300 }),
      )
      .map(([p, s]) => p + s);
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 500 }), prefixed), (input) => {
        expect(decodeBolt11(input)).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });
});
