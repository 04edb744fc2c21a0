import { describe, expect, it } from 'vitest';
import { NodeSecret } from '../../../../src/leases/node-secret.js';
import { ExternalMint } from '../../../../src/rails/cashu/external-mint.js';
import { MintClient, MintRefused, MintUnavailable } from '../../../../src/rails/cashu/mint-client.js';
import { FakeMint } from './fake-mint.js';

const secret = NodeSecret.fromBytes(new Uint8Array(32).fill(9));
const sum = (ps: ReadonlyArray<{ amount: number }>) => ps.reduce((n, p) => n + p.amount, 0);

function setup(options: { inputFeePpk?: number; timeoutMs?: number } = {}) {
  const mint = new FakeMint(options);
  const ext = new ExternalMint({
    url: mint.url,
    secret,
    unit: 'sat',
    fetch: mint.fetch,
    timeoutMs: options.timeoutMs ?? 5000,
  });
  return { mint, ext };
}

async function inspected(ext: ExternalMint, token: string) {
  const result = await ext.inspect(token);
  if (!result.ok) throw new Error(`inspect refused: ${result.code}`);
  return result.payment;
}

describe('ExternalMint.inspect', () => {
  it('reads amount, NUT-02 input fee and Y points without moving money', async () => {
    const { mint, ext } = setup({ inputFeePpk: 400 });
    const { token } = mint.token([64, 64, 2]);
    const payment = await inspected(ext, token);
    expect(payment.total).toBe(130n);
    expect(payment.fee).toBe(2n); // ceil(3 × 400 / 1000)
    expect(payment.Ys).toHaveLength(3);
    expect(mint.spent.size).toBe(0);
    expect(mint.calls.filter((c) => c === '/v1/swap')).toEqual([]);
  });

  it('refuses malformed tokens and amounts the keyset cannot sign', async () => {
    const { mint, ext } = setup();
    expect(await ext.inspect('cashuBnotatoken')).toMatchObject({ ok: false, code: 'invalid_token' });
    const { token } = mint.token([3]);
    expect(await ext.inspect(token)).toMatchObject({ ok: false, code: 'invalid_token' });
  });

  it('learns a keyset the mint added after its list was cached, without asking on every token', async () => {
    let now = 1_000_000;
    const mint = new FakeMint();
    const ext = new ExternalMint({ url: mint.url, secret, unit: 'sat', fetch: mint.fetch, clock: () => now });
    expect((await ext.inspect(mint.token([64]).token)).ok).toBe(true);
    const rotated = mint.rotate();
    const token = mint.token([64], 'r').token;
    // Within a few seconds of the last fetch, an unknown keyset is simply not this mint's.
    expect(await ext.inspect(token)).toMatchObject({ ok: false, code: 'mint_not_accepted' });
    now += 6_000;
    const payment = await inspected(ext, token);
    expect(payment.proofs[0]?.id).toBe(rotated);
    expect(mint.calls.filter((c) => c === '/v1/keysets')).toHaveLength(2);
  });

  it('answers mint_unavailable while the mint cannot be reached', async () => {
    const { mint, ext } = setup();
    const { token } = mint.token([64]);
    mint.script.set('/v1/keysets', ['down']);
    expect(await ext.inspect(token)).toMatchObject({ ok: false, code: 'mint_unavailable' });
    expect((await ext.inspect(token)).ok).toBe(true);
  });
});

describe('ExternalMint.redeem', () => {
  it('swaps into the kept part and the change before committing', async () => {
    const { mint, ext } = setup();
    const { token } = mint.token([128]);
    const payment = await inspected(ext, token);
    let commits = 0;
    expect(await ext.redeem(payment, 'key1', 120n, async () => void commits++)).toEqual({ ok: true });
    expect(commits).toBe(1);
    expect(mint.spent.size).toBe(1);
    const change = await ext.changeProofs('key1', 8n);
    expect(sum(change)).toBe(8);
    expect(change.every((p) => mint.valid(p))).toBe(true);
  });

  it('commits nothing when the mint refuses, and maps the refusal', async () => {
    const { mint, ext } = setup({ timeoutMs: 100 });
    const { token } = mint.token([128]);
    const payment = await inspected(ext, token);
    const never = async () => {
      throw new Error('must not commit');
    };
    mint.script.set('/v1/swap', [{ status: 400, body: { code: 10001, detail: 'no' } }]);
    expect(await ext.redeem(payment, 'k', 120n, never)).toMatchObject({ code: 'invalid_token' });
    mint.script.set('/v1/swap', [{ status: 500, body: { detail: 'boom' } }]);
    expect(await ext.redeem(payment, 'k', 120n, never)).toMatchObject({ code: 'mint_unavailable' });
    mint.script.set('/v1/swap', ['hang']);
    expect(await ext.redeem(payment, 'k', 120n, never)).toMatchObject({ code: 'mint_unavailable' });
    expect(mint.spent.size).toBe(0);
  });

  it('says token_spent when someone else spent the proofs', async () => {
    const { mint, ext } = setup();
    const { token, proofs } = mint.token([128]);
    const payment = await inspected(ext, token);
    await mint.fetch(`${mint.url}/v1/swap`, {
      method: 'POST',
      body: JSON.stringify({
        inputs: proofs,
        outputs: [
          {
            amount: 128,
            id: mint.keyset.id,
            B_: `02${'79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'}`,
          },
        ],
      }),
    });
    let commits = 0;
    expect(await ext.redeem(payment, 'k', 120n, async () => void commits++)).toMatchObject({
      code: 'token_spent',
    });
    expect(commits).toBe(0);
  });

  it('recovers a swap whose answer was lost: the retry restores the same outputs', async () => {
    const { mint, ext } = setup();
    const { token } = mint.token([128, 2]);
    const payment = await inspected(ext, token);
    mint.script.set('/v1/swap', ['drop']);
    let commits = 0;
    expect(await ext.redeem(payment, 'key2', 120n, async () => void commits++)).toMatchObject({
      code: 'mint_unavailable',
    });
    expect(commits).toBe(0);
    expect(mint.spent.size).toBe(2); // the mint did swap
    const signedBefore = mint.signed.size;
    expect(await ext.redeem(payment, 'key2', 120n, async () => void commits++)).toEqual({ ok: true });
    expect(commits).toBe(1);
    expect(mint.signed.size).toBe(signedBefore); // nothing signed twice
    expect(mint.calls).toContain('/v1/restore');
    const change = await ext.changeProofs('key2', 10n);
    expect(sum(change)).toBe(10);
    expect(change.every((p) => mint.valid(p))).toBe(true);
  });

  it('does not hand a retry at another price a lease paid by the first split', async () => {
    const { mint, ext } = setup();
    const { token } = mint.token([128]);
    const payment = await inspected(ext, token);
    mint.script.set('/v1/swap', ['drop']);
    await ext.redeem(payment, 'key3', 120n, async () => {});
    let commits = 0;
    expect(await ext.redeem(payment, 'key3', 100n, async () => void commits++)).toMatchObject({
      ok: false,
      code: 'token_spent',
    });
    expect(commits).toBe(0);
    // The original request still recovers.
    expect(await ext.redeem(payment, 'key3', 120n, async () => void commits++)).toEqual({ ok: true });
  });
});

describe('ExternalMint.bounce', () => {
  it('returns a swapped payment whole, and the token can never pay again', async () => {
    const { mint, ext } = setup();
    const { token } = mint.token([64]);
    const payment = await inspected(ext, token);
    await ext
      .redeem(payment, 'key9', 60n, async () => {
        throw new Error('the lease ended');
      })
      .catch(() => undefined);
    const returned = (await ext.bounce(payment, 'key9', 60n)) ?? [];
    expect(sum(returned)).toBe(64);
    expect(returned.every((p) => mint.valid(p))).toBe(true);
    expect(await ext.bounce(payment, 'key9', 60n)).toEqual(returned);
    // The same token for another purchase at the same price: the mint says the swap is done, but
    // what the node kept of it is gone, so nothing is granted.
    let commits = 0;
    expect(await ext.redeem(payment, 'key9', 60n, async () => void commits++)).toMatchObject({
      code: 'token_spent',
    });
    expect(commits).toBe(0);
  });

  it("returns nothing for a payment it never swapped (or swapped at another price): the token stays the payer's", async () => {
    const { mint, ext } = setup();
    const { token } = mint.token([64]);
    const payment = await inspected(ext, token);
    const swaps = mint.calls.filter((c) => c === '/v1/swap').length;
    expect(await ext.bounce(payment, 'key10', 60n)).toBeNull();
    expect(mint.calls.filter((c) => c === '/v1/swap').length).toBe(swaps);
    await ext
      .redeem(payment, 'key10', 60n, async () => {
        throw new Error('the lease ended');
      })
      .catch(() => undefined);
    expect(await ext.bounce(payment, 'key10', 50n)).toBeNull();
    expect(sum((await ext.bounce(payment, 'key10', 60n)) ?? [])).toBe(64);
  });
});

describe('ExternalMint.refundProofs', () => {
  it('swaps the kept proofs into a refund once; a repeat restores the same refund', async () => {
    const { mint, ext } = setup();
    const { token } = mint.token([128]);
    const payment = await inspected(ext, token);
    await ext.redeem(payment, 'key4', 120n, async () => {});
    const refund = await ext.refundProofs('lse_1', 100n, [{ key: 'key4', kept: 120n }]);
    expect(sum(refund)).toBe(100);
    expect(refund.every((p) => mint.valid(p))).toBe(true);
    const swaps = mint.calls.filter((c) => c === '/v1/swap').length;
    const again = await ext.refundProofs('lse_1', 100n, [{ key: 'key4', kept: 120n }]);
    expect(again).toEqual(refund);
    expect(mint.calls.filter((c) => c === '/v1/swap').length).toBe(swaps);
  });

  it('recovers a refund swap whose answer was lost', async () => {
    const { mint, ext } = setup();
    const { token } = mint.token([128]);
    await ext.redeem(await inspected(ext, token), 'key5', 120n, async () => {});
    mint.script.set('/v1/swap', ['drop']);
    await expect(ext.refundProofs('lse_2', 50n, [{ key: 'key5', kept: 120n }])).rejects.toBeInstanceOf(
      MintUnavailable,
    );
    const refund = await ext.refundProofs('lse_2', 50n, [{ key: 'key5', kept: 120n }]);
    expect(sum(refund)).toBe(50);
  });

  it('hands over the kept proofs when the swap fee would eat into the refund', async () => {
    const { mint, ext } = setup({ inputFeePpk: 1000 });
    const { token } = mint.token([128, 4]);
    const payment = await inspected(ext, token); // fee 2
    await ext.redeem(payment, 'key6', 120n, async () => {});
    const swaps = mint.calls.filter((c) => c === '/v1/swap').length;
    // 120 kept as 8+16+32+64: a swap would cost 4, so 118 owed comes as the 120 kept, unswapped.
    const refund = await ext.refundProofs('lse_3', 118n, [{ key: 'key6', kept: 120n }]);
    expect(sum(refund)).toBe(120);
    expect(refund.every((p) => mint.valid(p))).toBe(true);
    expect(mint.calls.filter((c) => c === '/v1/swap').length).toBe(swaps);
    // With room for the fee, the node pays it from its remainder and the refund is exact.
    const { token: token2 } = mint.token([128, 64], 'q');
    await ext.redeem(await inspected(ext, token2), 'key7', 180n, async () => {});
    const exact = await ext.refundProofs('lse_4', 100n, [{ key: 'key7', kept: 180n }]);
    expect(sum(exact)).toBe(100);
  });

  it('refunds at most what the lease kept at this mint', async () => {
    const { mint, ext } = setup();
    const { token } = mint.token([64]);
    await ext.redeem(await inspected(ext, token), 'key8', 60n, async () => {});
    const refund = await ext.refundProofs('lse_5', 90n, [{ key: 'key8', kept: 60n }]);
    expect(sum(refund)).toBe(60);
  });
});

describe('MintClient bounds', () => {
  it('gives up on oversize, malformed and non-NUT error answers', async () => {
    const big = new MintClient({
      url: 'http://127.0.0.1:9',
      maxResponseBytes: 100,
      fetch: async () => new Response(JSON.stringify({ keysets: [], pad: 'x'.repeat(500) })),
    });
    await expect(big.keysets()).rejects.toBeInstanceOf(MintUnavailable);
    const malformed = new MintClient({
      url: 'http://127.0.0.1:9',
      fetch: async () => new Response(JSON.stringify({ keysets: [{ id: 'zz' }] })),
    });
    await expect(malformed.keysets()).rejects.toBeInstanceOf(MintUnavailable);
    const html = new MintClient({
      url: 'http://127.0.0.1:9',
      fetch: async () => new Response('<html>', { status: 404 }),
    });
    await expect(html.keysets()).rejects.toBeInstanceOf(MintUnavailable);
    const refused = new MintClient({
      url: 'http://127.0.0.1:9',
      fetch: async () => new Response(JSON.stringify({ code: 11001, detail: 'spent' }), { status: 400 }),
    });
    await expect(refused.swap([], [])).rejects.toEqual(new MintRefused(11001, 'spent'));
  });
});
