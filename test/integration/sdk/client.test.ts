import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { Alacarte, type FetchLike } from '../../../src/sdk/client.js';
import {
  AlacarteApiError,
  AlacarteNetworkError,
  InsufficientFundsError,
  PriceLimitError,
  UnknownLeaseError,
} from '../../../src/sdk/errors.js';
import { LocalWallet } from '../../../src/wallet/local-wallet.js';
import { tempDir } from '../../helpers/cli.js';
import { type LeaseTestNode, startLeaseNode } from '../../helpers/lease-node.js';
import { typeUntil } from '../../helpers/terminal.js';

/** The SDK against a real node (store, mint, crun sandboxes) on loopback, paying from a LocalWallet. */
let t: LeaseTestNode;
const wallets: LocalWallet[] = [];

beforeAll(async () => {
  t = await startLeaseNode();
}, 60_000);
afterAll(async () => {
  await t?.close();
});
afterEach(() => {
  for (const w of wallets.splice(0)) w.close();
});

async function client(fund: number, options: { fetch?: FetchLike; home?: string } = {}) {
  const home = options.home ?? tempDir('sdk');
  const wallet = LocalWallet.open({ home });
  wallets.push(wallet);
  if (fund > 0) {
    const topup = await wallet.createTopup(t.mintUrl, Amount.of(fund));
    await wallet.completeTopup(topup.opId);
  }
  return { wallet, home, sdk: new Alacarte({ url: t.url, wallet, fetch: options.fetch, retryDelayMs: 10 }) };
}

const sats = (a: Amount) => Number(a.value);

describe('Alacarte SDK', { timeout: 120_000 }, () => {
  it('lists offers and quotes prices', async () => {
    const { sdk } = await client(0);
    const offers = await sdk.offers();
    expect(offers.offers.map((o) => o.id)).toContain('small');
    expect(offers.images).toContain('busybox');
    expect(offers.payment.cashu.mints).toEqual([t.mintUrl]);
    expect(await sdk.quote('small', 7200)).toEqual({
      offer: 'small',
      seconds: 7200,
      amount: 120,
      unit: 'sat',
    });
    const err = await sdk.quote('nope', 60).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlacarteApiError);
    expect(err).toMatchObject({ code: 'invalid_request', status: 400 });
  });

  it('rents, execs, reads status, extends and stops; the refund lands in the wallet', async () => {
    const { sdk, wallet } = await client(500);
    const lease = await sdk.rent({ offer: 'small', seconds: 600, image: 'busybox' });
    // 600 s of 60 sat/h = 10 sat, paid exactly: no change.
    expect(lease).toMatchObject({ state: 'running', paid: 10, change: null });
    expect(sats(wallet.balance())).toBe(490);
    expect(sdk.leases().map((l) => l.id)).toEqual([lease.id]);

    const out = await sdk.exec(lease.id, ['sh', '-c', 'echo hi; echo err >&2; exit 3']);
    expect(out).toEqual({ exit_code: 3, stdout: 'hi\n', stderr: 'err\n', truncated: false });
    expect((await sdk.exec(lease.id, ['cat'], { stdin: 'piped' })).stdout).toBe('piped');

    const status = await sdk.status(lease.id);
    expect(status.state).toBe('running');
    expect(status.remaining_seconds).toBeGreaterThan(500);

    const extended = await sdk.extend(lease.id, 3600);
    expect(Date.parse(extended.expires_at)).toBeGreaterThan(Date.parse(lease.expires_at) + 3500_000);
    expect(sats(wallet.balance())).toBe(430);

    const stopped = await sdk.stop(lease.id);
    expect(stopped.state).toBe('stopped');
    expect(stopped.refunded).toBeGreaterThan(60);
    expect(sats(wallet.balance())).toBe(430 + stopped.refunded);
    expect(wallet.pendingOps()).toHaveLength(0);

    const gone = await sdk.exec(lease.id, ['true']).catch((e: unknown) => e);
    expect(gone).toMatchObject({ name: 'AlacarteApiError', code: 'lease_not_running', status: 409 });
  });

  it('attaches an interactive shell: typed commands run, resize is accepted, exit ends the stream', async () => {
    const { sdk } = await client(100);
    const lease = await sdk.rent({ offer: 'small', seconds: 600, image: 'busybox' });
    const term = await sdk.attach(lease.id, { cols: 100, rows: 30 });
    let output = '';
    term.on('data', (b: Buffer) => {
      output += b.toString();
    });
    const ended = new Promise<string>((resolve) =>
      term.once('exit', (_c: number, reason: string) => resolve(reason)),
    );
    // Typed until answered: keys that come before the shell's line editing may be dropped.
    await typeUntil(term, 'echo hi-$((40+2))', () => output, /hi-42/);
    // Resizes apply asynchronously in the node: ask again until the new size shows.
    await typeUntil(term, 'stty size', () => output, /30 100/, { tries: 60, timeoutMs: 250 });
    term.resize(120, 40);
    await typeUntil(term, 'stty size', () => output, /40 120/, { tries: 60, timeoutMs: 250 });
    term.write('exit 5\n');
    expect(await ended).toBe('exit 5');
    const refused = await sdk.attach(lease.id, { token: 'wrong' }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ name: 'AlacarteApiError', status: 401 });
    await sdk.stop(lease.id);
  });

  it('overpays when the price is not a sum of its proofs, and takes the change back', async () => {
    const { sdk, wallet } = await client(128);
    // 128 is one proof; 7200 s cost 120. Either the wallet splits first (exact) or it overpays.
    const lease = await sdk.rent({ offer: 'small', seconds: 7200, image: 'busybox' });
    expect(lease.paid === 120 || (lease.paid === 128 && typeof lease.change === 'string')).toBe(true);
    expect(sats(wallet.balance())).toBe(8);
    await sdk.stop(lease.id);
  });

  it('throws InsufficientFundsError naming what is missing, and spends nothing', async () => {
    const { sdk, wallet } = await client(40);
    const err = await sdk.rent({ offer: 'small', seconds: 7200, image: 'busybox' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InsufficientFundsError);
    const e = err as InsufficientFundsError;
    expect([sats(e.needed), sats(e.available), sats(e.missing)]).toEqual([120, 40, 80]);
    expect(sats(wallet.balance())).toBe(40);
  });

  it('refuses to pay more than maxAmount, before anything is paid', async () => {
    const { sdk, wallet } = await client(200);
    const err = await sdk
      .rent({ offer: 'small', seconds: 7200, image: 'busybox', maxAmount: 100 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PriceLimitError);
    expect(err).toMatchObject({ asked: 120, limit: 100, unit: 'sat' });
    expect(sats(wallet.balance())).toBe(200);
    expect(wallet.pendingOps()).toHaveLength(0);
    const lease = await sdk.rent({ offer: 'small', seconds: 7200, image: 'busybox', maxAmount: 120 });
    expect(lease.state).toBe('running');
    await expect(sdk.extend(lease.id, 3600, { maxAmount: 59 })).rejects.toBeInstanceOf(PriceLimitError);
    expect(sats(wallet.balance())).toBe(80);
    await sdk.stop(lease.id);
  });

  it('gives rejected payments back (unknown image) and maps error codes', async () => {
    const { sdk, wallet } = await client(100);
    const err = await sdk
      .rent({ offer: 'small', seconds: 600, image: 'no-such-image' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlacarteApiError);
    expect((err as AlacarteApiError).status).toBeGreaterThanOrEqual(400);
    expect(sats(wallet.balance())).toBe(100);
    expect(wallet.pendingOps()).toHaveLength(0);

    await expect(sdk.status('lse_unknown')).rejects.toBeInstanceOf(UnknownLeaseError);
    const wrong = await sdk
      .status('lse_00000000000000000000000000', { token: 'not-the-token' })
      .catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: 'unauthorized', status: 401 });
    const nobody = new Alacarte({ url: 'http://127.0.0.1:1', retries: 0 });
    await expect(nobody.offers()).rejects.toBeInstanceOf(AlacarteNetworkError);
  });

  it('retries a lost answer with the same token and key: one lease, one charge', async () => {
    let lose = 1;
    const lossy: FetchLike = async (input, init) => {
      const res = await fetch(input, init);
      const paid = new Headers(init?.headers).has('x-cashu');
      if (paid && lose > 0) {
        lose--;
        await res.arrayBuffer();
        throw new TypeError('fetch failed');
      }
      return res;
    };
    const { sdk, wallet } = await client(100, { fetch: lossy });
    const lease = await sdk.rent({ offer: 'small', seconds: 600, image: 'busybox' });
    expect(lease.paid).toBe(10);
    expect(sats(wallet.balance())).toBe(90);
    await sdk.stop(lease.id);
  });

  it('recovers a lease whose every answer was lost: recover() replays it and takes the credential', async () => {
    const dead: FetchLike = async (input, init) => {
      const res = await fetch(input, init);
      if (new Headers(init?.headers).has('x-cashu')) {
        await res.arrayBuffer();
        throw new TypeError('fetch failed');
      }
      return res;
    };
    const { sdk, wallet, home } = await client(100, { fetch: dead });
    await expect(sdk.rent({ offer: 'small', seconds: 600, image: 'busybox' })).rejects.toBeInstanceOf(
      AlacarteNetworkError,
    );
    expect(sdk.leases()).toHaveLength(0);
    wallet.close();
    wallets.splice(wallets.indexOf(wallet), 1);
    // A new process with a working network.
    const again = LocalWallet.open({ home });
    wallets.push(again);
    const sdk2 = new Alacarte({ url: t.url, wallet: again });
    expect(await sdk2.recover()).toEqual({ settled: 1, pending: 0 });
    const [entry] = sdk2.leases();
    expect(entry?.paid).toBe(10);
    expect(sats(again.balance())).toBe(90);
    expect((await sdk2.exec(entry?.id ?? '', ['echo', 'back'])).stdout).toBe('back\n');
    await sdk2.stop(entry?.id ?? '');
  });

  it('closes a payment whose proofs someone else redeemed: the replay is refused, nothing stays pending', async () => {
    const { sdk, wallet } = await client(64);
    const body = { offer: 'small', seconds: 600, image: 'busybox' };
    const purpose = {
      kind: 'lease.create' as const,
      url: `${t.url}/v1/leases`,
      idempotencyKey: 'stolen',
      body,
    };
    const p = await wallet.pay({ mints: [t.mintUrl], amount: Amount.of(10), purpose });
    const thief = LocalWallet.open({ home: tempDir('thief') });
    wallets.push(thief);
    await thief.receive(p.token);
    expect(await sdk.recover()).toEqual({ settled: 1, pending: 0 });
    expect(wallet.pendingOps()).toHaveLength(0);
    expect(sats(wallet.balance())).toBe(54);
    expect(sdk.leases()).toHaveLength(0);
  });

  it('goes from a funded wallet to a command in a sandbox in three lines', async () => {
    const { wallet, home } = await client(100);
    wallet.close();
    wallets.splice(wallets.indexOf(wallet), 1);

    const alacarte = Alacarte.open({ url: t.url, home });
    const lease = await alacarte.rent({ offer: 'small', seconds: 60, image: 'busybox' });
    const { stdout } = await alacarte.exec(lease.id, ['echo', 'hi']);

    expect(stdout).toBe('hi\n');
    await alacarte.stop(lease.id);
    alacarte.close();
  });

  it('fetches a refund whose stop answer was lost, exactly once', async () => {
    let loseDeletes = true;
    const lossy: FetchLike = async (input, init) => {
      const res = await fetch(input, init);
      if (init?.method === 'DELETE' && loseDeletes) {
        await res.arrayBuffer();
        throw new TypeError('fetch failed');
      }
      return res;
    };
    const { sdk, wallet } = await client(100, { fetch: lossy });
    const lease = await sdk.rent({ offer: 'small', seconds: 3600, image: 'busybox' });
    expect(sats(wallet.balance())).toBe(40);
    await expect(sdk.stop(lease.id)).rejects.toBeInstanceOf(AlacarteNetworkError);
    expect(wallet.pendingOps().map((o) => o.kind)).toEqual(['refund']);
    loseDeletes = false;
    expect(await sdk.recover()).toEqual({ settled: 1, pending: 0 });
    const refunded = sats(wallet.balance()) - 40;
    expect(refunded).toBeGreaterThanOrEqual(58);
    expect(await sdk.recover()).toEqual({ settled: 0, pending: 0 });
    expect(sats(wallet.balance())).toBe(40 + refunded);
  });
});
