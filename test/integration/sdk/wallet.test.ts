import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { InsufficientFundsError, WalletOperationError } from '../../../src/wallet/errors.js';
import { LocalWallet } from '../../../src/wallet/local-wallet.js';
import { BrowserWallet } from '../../../web/src/wallet.js';
import { tempDir } from '../../helpers/cli.js';
import { type MintFixture, startMint } from './mint-fixture.js';

let m: MintFixture;
const open: LocalWallet[] = [];

beforeAll(async () => {
  m = await startMint();
});
afterAll(async () => {
  await m?.close();
});
afterEach(() => {
  for (const w of open.splice(0)) w.close();
});

function wallet(home = tempDir('wallet'), mnemonic?: string): LocalWallet {
  const w = LocalWallet.open({ home, mnemonic, sleep: async () => undefined });
  open.push(w);
  return w;
}

async function funded(amount: number, home?: string): Promise<LocalWallet> {
  const w = wallet(home);
  const t = await w.createTopup(m.mintUrl, Amount.of(amount));
  await w.completeTopup(t.opId);
  return w;
}

const sats = (a: Amount) => Number(a.value);

describe('LocalWallet against the node mint', { timeout: 120_000 }, () => {
  it('tops up, sends exactly, receives, and keeps its file private', async () => {
    const alice = await funded(100);
    expect(sats(alice.balance())).toBe(100);
    const mode = statSync(alice.path).mode & 0o777;
    expect(mode).toBe(0o600);

    const { opId, token } = await alice.send(m.mintUrl, Amount.of(21));
    alice.confirmSent(opId);
    expect(token).toMatch(/^cashuB/);
    expect(sats(alice.balance())).toBe(79);

    const bob = wallet();
    expect(sats(await bob.receive(token))).toBe(21);
    expect(sats(bob.balance())).toBe(21);
    // Redeemed once: a second receive is refused and adds nothing.
    const carol = wallet();
    await expect(carol.receive(token)).rejects.toBeInstanceOf(WalletOperationError);
    expect(sats(carol.balance())).toBe(0);
    expect(carol.pendingOps()).toHaveLength(0);
  });

  it('refuses to send more than it holds, saying how much is missing', async () => {
    const w = await funded(40);
    const err = await w.send(m.mintUrl, Amount.of(120)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InsufficientFundsError);
    const e = err as InsufficientFundsError;
    expect([sats(e.needed), sats(e.available), sats(e.missing)]).toEqual([120, 40, 80]);
    expect(sats(w.balance())).toBe(40);
  });

  it('pays exactly when it can split, and reclaims a payment that never reached a server', async () => {
    const home = tempDir('wallet');
    const w = await funded(100, home);
    const purpose = {
      kind: 'lease.create' as const,
      url: 'http://127.0.0.1:1/v1/leases',
      idempotencyKey: 'k1',
      body: {},
    };
    const p = await w.pay({ mints: [m.mintUrl], amount: Amount.of(37), purpose });
    expect(sats(p.paid)).toBe(37);
    expect(sats(w.balance())).toBe(63);
    // The process dies here: the token never left. A new process reconciles it back.
    w.close();
    open.splice(open.indexOf(w), 1);
    const again = wallet(home);
    expect(sats(again.balance())).toBe(63);
    const settled = await again.reconcile();
    expect(settled.map((s) => s.outcome)).toEqual(['settled']);
    expect(sats(again.balance())).toBe(100);
  });

  it('hands a payment that a server redeemed back for replay instead of counting it twice', async () => {
    const w = await funded(64);
    const purpose = {
      kind: 'lease.create' as const,
      url: 'http://127.0.0.1:1/v1/leases',
      idempotencyKey: 'k2',
      body: {},
    };
    const p = await w.pay({ mints: [m.mintUrl], amount: Amount.of(10), purpose });
    const server = wallet();
    await server.receive(p.token);
    const settled = await w.reconcile();
    expect(settled.map((s) => s.outcome)).toEqual(['needs-server']);
    expect(sats(w.balance())).toBe(54);
    // The server's change comes back into the wallet.
    const { opId, token: change } = await server.send(m.mintUrl, Amount.of(3));
    server.confirmSent(opId);
    expect(sats(await w.paymentAccepted(p.opId, change))).toBe(3);
    expect(sats(w.balance())).toBe(57);
    expect(w.pendingOps()).toHaveLength(0);
  });

  it('recovers the outputs of a swap whose answer was lost (NUT-09 over the recorded counters)', async () => {
    const w = await funded(100);
    m.drop('/v1/swap');
    const purpose = {
      kind: 'lease.create' as const,
      url: 'http://127.0.0.1:1/v1/leases',
      idempotencyKey: 'k3',
      body: {},
    };
    // 100 = 64+32+4: no exact subset for 37, so the wallet swaps — and the answer never arrives.
    const p = await w.pay({ mints: [m.mintUrl], amount: Amount.of(37), purpose }).catch((e: unknown) => e);
    m.undrop();
    // The swap happened at the mint; the wallet restores its outputs and still pays exactly.
    expect(p).not.toBeInstanceOf(Error);
    expect(sats((p as { paid: Amount }).paid)).toBe(37);
    expect(sats(w.balance())).toBe(63);
    await w.reconcile();
    expect(sats(w.balance())).toBe(100);
  });

  it('recovers a received token whose swap answer was lost', async () => {
    const a = await funded(50);
    const { opId, token } = await a.send(m.mintUrl, Amount.of(50));
    a.confirmSent(opId);
    const b = wallet();
    m.drop('/v1/swap');
    await expect(b.receive(token)).rejects.toThrow();
    m.undrop();
    expect(b.pendingOps().map((o) => o.kind)).toEqual(['receive']);
    await b.reconcile();
    expect(sats(b.balance())).toBe(50);
    expect(b.pendingOps()).toHaveLength(0);
  });

  it('recovers minted proofs whose answer was lost', async () => {
    const w = wallet();
    const t = await w.createTopup(m.mintUrl, Amount.of(30));
    m.drop('/v1/mint/bolt11');
    await expect(w.completeTopup(t.opId)).rejects.toThrow();
    m.undrop();
    expect(sats(w.balance())).toBe(0);
    await w.reconcile();
    expect(sats(w.balance())).toBe(30);
  });

  it('restores the whole wallet from its seed phrase', async () => {
    const a = await funded(77);
    const { opId, token } = await a.send(m.mintUrl, Amount.of(7));
    a.confirmSent(opId);
    await wallet().receive(token);
    const words = a.mnemonic;
    expect(words.split(' ')).toHaveLength(12);
    const b = wallet(tempDir('wallet'), words);
    expect(sats(await b.restore(m.mintUrl))).toBe(70);
    expect(sats(b.balance())).toBe(70);
    // Restoring again finds nothing new; new outputs do not reuse counters (the mint would refuse).
    expect(sats(await b.restore(m.mintUrl))).toBe(0);
    const s = await b.send(m.mintUrl, Amount.of(5));
    b.confirmSent(s.opId);
    expect(sats(b.balance())).toBe(65);
  });

  it('withdraws to a Lightning invoice (melt), paying the fee from the balance', async () => {
    const w = await funded(100);
    const invoice = (await new FakeLightningBackend().createInvoice(Amount.of(25), 'coffee')).bolt11;
    const out = await w.withdraw(invoice, m.mintUrl);
    expect(sats(out.amount)).toBe(25);
    expect(sats(w.balance())).toBe(75 - sats(out.fee));
    expect(w.pendingOps()).toHaveLength(0);
  });

  it("answers a withdrawal with the payment's preimage, the proof an L402 server asks for", async () => {
    const w = await funded(100);
    // An invoice of the mint's own Lightning backend, as the node's L402 challenges carry.
    const invoice = await m.mint.lightning.createInvoice(Amount.of(12), 'l402');
    const out = await w.withdraw(invoice.bolt11, m.mintUrl);
    expect(sats(out.amount)).toBe(12);
    expect(out.preimage).toMatch(/^[0-9a-f]{64}$/);
    const hashed = createHash('sha256')
      .update(Buffer.from(out.preimage ?? '', 'hex'))
      .digest('hex');
    expect(hashed).toBe(invoice.paymentHash);
  });

  it('after the mint rotates its keyset, ecash of the old one still goes wallet to wallet (README: older keysets keep redeeming)', async () => {
    const home = tempDir('wallet');
    const before = await funded(31, home);
    before.close();
    await m.mint.mint.rotate();
    // Each CLI command is a new process: wallets opened after the rotation, which the mint's
    // /v1/keys shows only the new keyset's keys.
    const alice = wallet(home);
    // 31 in powers of two: 16 + 8 + 4 + 2 + 1, so 7 = 4 + 2 + 1 goes as the old keyset's proofs.
    const { opId, token } = await alice.send(m.mintUrl, Amount.of(7));
    alice.confirmSent(opId);
    const bob = wallet();
    expect(sats(await bob.receive(token))).toBe(7);
    expect(bob.pendingOps()).toHaveLength(0);
    // And back into a wallet that holds the old keyset's ecash itself.
    const back = await alice.send(m.mintUrl, Amount.of(8));
    alice.confirmSent(back.opId);
    const again = wallet(home);
    expect(sats(await again.receive(back.token))).toBe(8);
    expect(sats(again.balance())).toBe(24);
  });

  it("the web page's wallet too: a pasted token of a rotated-out keyset comes in", async () => {
    // Ecash of the keyset active now, which the next rotation puts out of use.
    const sender = await funded(5);
    const { opId, token } = await sender.send(m.mintUrl, Amount.of(5));
    sender.confirmSent(opId);
    await m.mint.mint.rotate();
    const storage = new Map<string, string>();
    const page = await BrowserWallet.open({
      mintUrl: m.mintUrl,
      unit: 'sat',
      origin: new URL(m.mintUrl).origin,
      storage: {
        getItem: (k: string) => storage.get(k) ?? null,
        setItem: (k: string, v: string) => void storage.set(k, v),
      },
      onChange: () => undefined,
    });
    expect(await page.receive(token)).toBe(5);
    expect(page.balance()).toBe(5);
  });
});
