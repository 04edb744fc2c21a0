import { randomBytes } from 'node:crypto';
import {
  CheckStateEnum,
  injectWebSocketImpl,
  type Logger,
  MeltQuoteState,
  MintOperationError,
  MintQuoteState,
  type Proof,
  Wallet,
} from '@cashu/cashu-ts';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Amount } from '../../../src/core/amount.js';
import { buildApp } from '../../../src/http/app.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { silentLogger } from '../../../src/log.js';
import { bytesToHex, publicKeyOf } from '../../../src/mint/crypto/index.js';
import { mintPlugin } from '../../../src/mint/http/routes.js';
import { startTrustedMint } from '../../helpers/payout-fixtures.js';
import { createTestMint, createTestServer, listenMint, type TestMint, yOf } from '../../unit/mint/harness.js';

/**
 * NUT-17 WebSocket subscriptions and NUT-20 locked quotes, tried as a wallet developer would: with
 * @cashu/cashu-ts 4.x's own subscription API against the mint over loopback. Invoices settle 2 s
 * after their creation (the fake backend's settle delay, on the real clock), so a wallet that
 * mints has to wait for the payment, as it would with a real Lightning backend.
 */

// Node 20 has no global WebSocket; cashu-ts takes an implementation.
injectWebSocketImpl(WebSocket as unknown as typeof globalThis.WebSocket);

const SETTLE_MS = 2000;
let t: TestMint;
let app: FastifyInstance;
let mintUrl: string;

beforeAll(async () => {
  t = await createTestMint({ lightning: { now: Date.now, settleDelayMs: SETTLE_MS } });
  app = await buildApp({
    logger: silentLogger(),
    bodyLimitBytes: 1024 * 1024,
    plugins: [
      {
        prefix: '/mint',
        plugin: mintPlugin({
          mint: t.mint,
          nut17: { maxSubscriptionsPerConnection: 5, maxFilters: 10, maxSubscriptions: 8 },
        }),
      },
    ],
  });
  mintUrl = await listenMint(app);
});
afterAll(async () => {
  await app?.close();
  await t?.close();
});

const sum = (proofs: readonly Proof[]) => proofs.reduce((n, p) => n + Number(p.amount.toBigInt()), 0);

/** A logger that keeps cashu-ts' warnings, to see whether it had to fall back to anything. */
function recordingLogger(warnings: string[]): Logger {
  const none = () => {};
  return {
    error: none,
    info: none,
    debug: none,
    trace: none,
    log: none,
    warn: (message) => {
      warnings.push(message);
    },
  };
}

async function wallet(warnings: string[] = []): Promise<Wallet> {
  const w = new Wallet(mintUrl, { unit: 'sat', logger: recordingLogger(warnings) });
  await w.loadMint();
  return w;
}

/** Proofs worth `amount`, funded at once: the mint's own backend pays the quote's invoice. */
async function fund(w: Wallet, amount: number): Promise<Proof[]> {
  const quote = await w.createMintQuoteBolt11(amount);
  await t.lightning.payInvoice(quote.request, Amount.zero());
  return w.mintProofsBolt11(amount, quote.quote);
}

function privateKey(): { priv: string; pub: string } {
  const priv = new Uint8Array(randomBytes(32));
  return { priv: bytesToHex(priv), pub: bytesToHex(publicKeyOf(priv)) };
}

/** Polls `read` until `done` or ~5 s pass (notifications arrive asynchronously). */
async function eventually<T>(read: () => T, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; i < 100 && !done(read()); i++) await new Promise((r) => setTimeout(r, 50));
  return read();
}

describe('NUT-17 with cashu-ts', () => {
  it('advertises WebSocket support so that cashu-ts uses it', async () => {
    const w = await wallet();
    expect(w.getMintInfo().isSupported(17)).toMatchObject({ supported: true });
    expect(w.getMintInfo().isSupported(20)).toEqual({ supported: true });
  });

  it('a wallet mints after waiting on a subscription for the invoice to settle (2 s)', async () => {
    const w = await wallet();
    const quote = await w.createMintQuoteBolt11(64);
    expect(quote.state).toBe(MintQuoteState.UNPAID);
    const states: string[] = [];
    const cancel = await w.on.mintQuoteUpdates(
      [quote.quote],
      (q) => states.push(q.state),
      () => {},
    );
    const started = Date.now();
    const paid = await w.on.onceMintPaid(quote.quote, { timeoutMs: 10_000 });
    expect(paid.state).toBe(MintQuoteState.PAID);
    // Paid when the invoice settled, not before: the mint heard of it through the backend.
    expect(Date.now() - started).toBeGreaterThan(SETTLE_MS / 2);
    const proofs = await w.mintProofsBolt11(64, quote.quote);
    expect(sum(proofs)).toBe(64);
    // The subscription saw the whole life of the quote: its first state, then each change.
    expect(
      await eventually(
        () => states,
        (s) => s.includes('ISSUED'),
      ),
    ).toEqual(['UNPAID', 'PAID', 'ISSUED']);
    cancel();
  });

  it('the mint books a settled invoice by itself, with nobody asking', async () => {
    const w = await wallet();
    const quote = await w.createMintQuoteBolt11(8);
    const stateInStore = async () =>
      (
        await t.db
          .selectFrom('mint_mint_quotes')
          .select('state')
          .where('id', '=', quote.quote)
          .executeTakeFirstOrThrow()
      ).state;
    expect(await stateInStore()).toBe('UNPAID');
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    let state = await stateInStore();
    for (let i = 0; i < 60 && state !== 'PAID'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      state = await stateInStore();
    }
    expect(state).toBe('PAID');
  });

  it('mints a NUT-20 locked quote with its key, and refuses a wrong key or a missing signature', async () => {
    const warnings: string[] = [];
    const w = await wallet(warnings);
    const { priv, pub } = privateKey();
    const quote = await w.createLockedMintQuote(16, pub);
    expect(quote.pubkey).toBe(pub);
    await w.on.onceMintPaid(quote.quote, { timeoutMs: 10_000 });

    // Without a signature (the wallet only knows the quote id): 20008.
    const unsigned = await w.mintProofsBolt11(16, quote.quote).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(unsigned).toBeInstanceOf(MintOperationError);
    expect((unsigned as MintOperationError).code).toBe(20008);

    // Signed by another key: 20008.
    const other = privateKey();
    const forged = await w
      .mintProofsBolt11(16, { ...quote, pubkey: other.pub }, { privkey: other.priv })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((forged as MintOperationError).code).toBe(20008);
    expect((await w.checkMintQuoteBolt11(quote.quote)).state).toBe(MintQuoteState.PAID);

    warnings.length = 0;
    const proofs = await w.mintProofsBolt11(16, quote, { privkey: priv });
    expect(sum(proofs)).toBe(16);
    // The mint took cashu-ts' first (amended) signature: no retry with the legacy message.
    expect(warnings.filter((m) => /NUT-20|legacy/.test(m))).toEqual([]);
  });

  it('notifies proof states: UNSPENT at first, then SPENT when the proofs are swapped', async () => {
    const alice = await wallet();
    const proofs = await fund(alice, 10);
    const seen = new Map<string, string[]>();
    const cancel = await alice.on.proofStateUpdates(
      proofs,
      (update) => {
        const list = seen.get(update.Y) ?? [];
        list.push(update.state);
        seen.set(update.Y, list);
      },
      () => {},
    );
    const Ys = proofs.map((p) => yOf(p.secret));
    await eventually(
      () => seen,
      (m) => Ys.every((Y) => m.get(Y)?.length === 1),
    );
    expect(Ys.map((Y) => seen.get(Y))).toEqual(Ys.map(() => [CheckStateEnum.UNSPENT]));
    const bob = await wallet();
    const { send } = await alice.send(10, proofs);
    await bob.receive({ mint: mintUrl, proofs: send, unit: 'sat' });
    await eventually(
      () => seen,
      (m) => Ys.every((Y) => m.get(Y)?.length === 2),
    );
    expect(Ys.map((Y) => seen.get(Y))).toEqual(Ys.map(() => [CheckStateEnum.UNSPENT, CheckStateEnum.SPENT]));
    cancel();
  });

  it('notifies a melt quote from UNPAID to PAID, and its proofs PENDING then SPENT', async () => {
    const w = await wallet();
    const proofs = await fund(w, 40);
    const outside = new FakeLightningBackend();
    const invoice = (await outside.createInvoice(Amount.of(20), 'coffee')).bolt11;
    const meltQuote = await w.createMeltQuoteBolt11(invoice);
    const quoteStates: Array<{ state: string; preimage: string | null | undefined }> = [];
    const cancelQuote = await w.on.meltQuoteUpdates(
      [meltQuote.quote],
      (q) => quoteStates.push({ state: q.state, preimage: q.payment_preimage }),
      () => {},
    );
    const { send } = await w.send(meltQuote.amount.add(meltQuote.fee_reserve), proofs, { includeFees: true });
    const proofStates: string[][] = send.map(() => []);
    const Ys = send.map((p) => yOf(p.secret));
    const cancelProofs = await w.on.proofStateUpdates(
      send,
      (update) => proofStates[Ys.indexOf(update.Y)]?.push(update.state),
      () => {},
    );
    await eventually(
      () => quoteStates.length + proofStates.flat().length,
      (n) => n === 1 + send.length,
    );
    const paid = w.on.onceMeltPaid(meltQuote.quote, { timeoutMs: 10_000 });
    const melted = await w.meltProofsBolt11(meltQuote, send);
    expect(melted.quote.state).toBe(MeltQuoteState.PAID);
    expect((await paid).state).toBe(MeltQuoteState.PAID);
    await eventually(
      () => quoteStates,
      (q) => q.at(-1)?.state === 'PAID',
    );
    expect(quoteStates[0]).toEqual({ state: 'UNPAID', preimage: null });
    expect(quoteStates.at(-1)).toEqual({ state: 'PAID', preimage: expect.stringMatching(/^[0-9a-f]{64}$/) });
    await eventually(
      () => proofStates,
      (p) => p.every((s) => s.length === 3),
    );
    expect(proofStates).toEqual(send.map(() => ['UNSPENT', 'PENDING', 'SPENT']));
    cancelQuote();
    cancelProofs();
  });
});

describe('NUT-17 for a melt whose payment takes time', () => {
  it('tells the wallet when the payment completes, with nobody asking the mint', async () => {
    const slow = await createTestMint({ lightning: { now: Date.now, payDelayMs: 1500 } });
    const slowApp = await createTestServer(slow);
    try {
      const url = await listenMint(slowApp);
      const w = new Wallet(url, { unit: 'sat' });
      await w.loadMint();
      const quote = await w.createMintQuoteBolt11(32);
      const proofs = await w.mintProofsBolt11(32, quote.quote);
      const outside = new FakeLightningBackend();
      const invoice = (await outside.createInvoice(Amount.of(16), 'slow coffee')).bolt11;
      const meltQuote = await w.createMeltQuoteBolt11(invoice);
      const states: string[] = [];
      const cancel = await w.on.meltQuoteUpdates(
        [meltQuote.quote],
        (q) => states.push(q.state),
        () => {},
      );
      const { send } = await w.send(meltQuote.amount.add(meltQuote.fee_reserve), proofs, {
        includeFees: true,
      });
      const melted = await w.meltProofsBolt11(meltQuote, send);
      expect(melted.quote.state).toBe(MeltQuoteState.PENDING);
      const paid = await w.on.onceMeltPaid(meltQuote.quote, { timeoutMs: 10_000 });
      expect(paid.state).toBe(MeltQuoteState.PAID);
      expect(
        await eventually(
          () => states,
          (s) => s.includes('PAID'),
        ),
      ).toEqual(['UNPAID', 'PENDING', 'PAID']);
      cancel();
    } finally {
      await slowApp.close();
      await slow.close();
    }
  });
});

/** A raw JSON-RPC client on the mint's WebSocket, for what no wallet library would send. */
class RawClient {
  readonly messages: Array<Record<string, unknown>> = [];
  closed: { code: number; reason: string } | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.messages.push(JSON.parse(String(data)) as Record<string, unknown>));
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
    });
  }

  /** `localAddress`: the client address to connect from (any of 127.0.0.0/8 on loopback). */
  static async open(url = mintUrl, localAddress?: string): Promise<RawClient> {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws`, localAddress ? { localAddress } : {});
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new RawClient(ws);
  }

  /** Sends `frame` and waits for the answer with this JSON-RPC id (or any answer for `null`). */
  async call(
    frame: unknown,
    id: unknown = (frame as { id?: unknown })?.id ?? null,
  ): Promise<Record<string, unknown>> {
    const before = this.messages.length;
    this.ws.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame));
    const found = await eventually(
      () => this.messages.slice(before).find((m) => m.id === id && ('result' in m || 'error' in m)),
      (m) => m !== undefined,
    );
    if (found === undefined) throw new Error(`no answer to ${String(frame).slice(0, 80)}`);
    return found;
  }

  subscribe(id: number, subId: string, kind: string, filters: unknown): Promise<Record<string, unknown>> {
    return this.call({ jsonrpc: '2.0', id, method: 'subscribe', params: { kind, subId, filters } });
  }

  close(): void {
    this.ws.close();
  }
}

const errorCode = (m: Record<string, unknown>) => (m.error as { code?: number } | undefined)?.code;

describe('NUT-17 against hostile input', () => {
  it('answers every malformed request with a JSON-RPC error and keeps serving', async () => {
    const w = await wallet();
    const quote = await w.createMintQuoteBolt11(1);
    const c = await RawClient.open();
    expect(errorCode(await c.call('not json', null))).toBe(-32700);
    expect(errorCode(await c.call('['.repeat(60_000), null))).toBe(-32700);
    expect(errorCode(await c.call([1, 2, 3], null))).toBe(-32600);
    expect(errorCode(await c.call({ id: 1, method: 'subscribe' }))).toBe(-32600);
    expect(errorCode(await c.call({ jsonrpc: '2.0', id: { x: 1 }, method: 'subscribe' }, null))).toBe(-32600);
    expect(errorCode(await c.call(Buffer.from('{"binary":true}'), null))).toBe(-32600);
    expect(errorCode(await c.call({ jsonrpc: '2.0', id: 2, method: 'eval', params: {} }))).toBe(-32601);
    expect(errorCode(await c.subscribe(3, 's', 'bolt12_mint_quote', [quote.quote]))).toBe(-32602);
    expect(errorCode(await c.subscribe(4, 's', 'bolt11_mint_quote', ['../../etc/passwd']))).toBe(-32602);
    expect(errorCode(await c.subscribe(5, 's', 'bolt11_mint_quote', []))).toBe(-32602);
    expect(errorCode(await c.subscribe(6, 's', 'bolt11_mint_quote', 'not an array'))).toBe(-32602);
    expect(errorCode(await c.subscribe(7, 'x'.repeat(500), 'bolt11_mint_quote', [quote.quote]))).toBe(-32602);
    // Well-formed but unknown: no subscription to something that cannot exist.
    expect(
      errorCode(await c.subscribe(8, 's', 'bolt11_mint_quote', ['01234567-89ab-7def-8123-456789abcdef'])),
    ).toBe(-32602);
    expect(errorCode(await c.subscribe(9, 's', 'proof_state', [`02${'f'.repeat(64)}`]))).toBe(-32602);
    expect(
      errorCode(await c.call({ jsonrpc: '2.0', id: 10, method: 'unsubscribe', params: { subId: 'nope' } })),
    ).toBe(-32602);
    // Still serving on the same connection, with the first state right after the OK.
    const ok = await c.subscribe(11, 'good', 'bolt11_mint_quote', [quote.quote]);
    expect(ok).toEqual({ jsonrpc: '2.0', result: { status: 'OK', subId: 'good' }, id: 11 });
    const first = await eventually(
      () => c.messages.find((m) => m.method === 'subscribe'),
      (m) => m !== undefined,
    );
    expect(first).toMatchObject({
      params: { subId: 'good', payload: { quote: quote.quote, state: 'UNPAID' } },
    });
    expect(errorCode(await c.subscribe(12, 'good', 'bolt11_mint_quote', [quote.quote]))).toBe(-32602);
    expect(
      await c.call({
        jsonrpc: '2.0',
        id: '13',
        method: 'unsubscribe',
        params: JSON.stringify({ subId: 'good' }),
      }),
    ).toEqual({ jsonrpc: '2.0', result: { status: 'OK', subId: 'good' }, id: '13' });
    c.close();
    expect((await fetch(`${mintUrl}/v1/info`)).status).toBe(200);
    // Plain HTTP on the WebSocket's path: the mint's error format, not a bare 404.
    const plain = await fetch(`${mintUrl}/v1/ws`);
    expect(plain.status).toBe(426);
    expect(await plain.json()).toEqual({ detail: expect.stringContaining('WebSocket'), code: 10000 });
  });

  it('bounds filters, subscriptions per connection and in total, and frame size', async () => {
    const Y = (i: number) => yOf(`secret ${i}`);
    const c = await RawClient.open();
    expect(
      errorCode(
        await c.subscribe(
          1,
          'many',
          'proof_state',
          Array.from({ length: 11 }, (_, i) => Y(i)),
        ),
      ),
    ).toBe(-32000);
    for (let i = 0; i < 5; i++) {
      expect(await c.subscribe(10 + i, `s${i}`, 'proof_state', [Y(i)])).toMatchObject({
        result: { status: 'OK' },
      });
    }
    expect(errorCode(await c.subscribe(20, 's5', 'proof_state', [Y(5)]))).toBe(-32000);
    const d = await RawClient.open();
    for (let i = 0; i < 3; i++) {
      expect(await d.subscribe(30 + i, `d${i}`, 'proof_state', [Y(i)])).toMatchObject({
        result: { status: 'OK' },
      });
    }
    // 5 + 3 = the mint's total of 8.
    expect(errorCode(await d.subscribe(40, 'd3', 'proof_state', [Y(9)]))).toBe(-32000);
    // A closed connection gives its subscriptions back.
    c.close();
    await eventually(
      () => c.closed,
      (x) => x !== undefined,
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(await d.subscribe(41, 'd4', 'proof_state', [Y(9)])).toMatchObject({ result: { status: 'OK' } });
    // A frame beyond 64 KiB closes the socket (1009, message too big), the mint lives on.
    d.ws.send('x'.repeat(70 * 1024));
    expect(
      (
        await eventually(
          () => d.closed,
          (x) => x !== undefined,
        )
      )?.code,
    ).toBe(1009);
    expect((await fetch(`${mintUrl}/v1/info`)).status).toBe(200);
  });
});

describe('NUT-17 connection bounds', () => {
  it('turns away connections beyond the limit (1013) and cuts off a client that floods requests (1008)', async () => {
    const small = await buildApp({
      logger: silentLogger(),
      bodyLimitBytes: 1024 * 1024,
      plugins: [
        { prefix: '/mint', plugin: mintPlugin({ mint: t.mint, nut17: { maxConnections: 1, maxQueued: 3 } }) },
      ],
    });
    try {
      const url = await listenMint(small);
      const first = await RawClient.open(url);
      const second = await RawClient.open(url);
      expect(
        (
          await eventually(
            () => second.closed,
            (x) => x !== undefined,
          )
        )?.code,
      ).toBe(1013);
      // A burst of requests the mint cannot answer as fast as they come: the queue bound closes it.
      const quote = await t.mint.createMintQuote({ amount: 1, unit: 'sat' });
      for (let i = 0; i < 50; i++) {
        first.ws.send(
          JSON.stringify({
            jsonrpc: '2.0',
            id: i,
            method: 'subscribe',
            params: { kind: 'bolt11_mint_quote', subId: `s${i}`, filters: [quote.quote] },
          }),
        );
      }
      expect(
        (
          await eventually(
            () => first.closed,
            (x) => x !== undefined,
          )
        )?.code,
      ).toBe(1008);
      // Both gone: a new connection is welcome again.
      await new Promise((r) => setTimeout(r, 100));
      const third = await RawClient.open(url);
      expect(await third.subscribe(1, 'ok', 'bolt11_mint_quote', [quote.quote])).toMatchObject({
        result: { status: 'OK' },
      });
      third.close();
    } finally {
      await small.close();
    }
  });
});

describe('NUT-17 subscriptions per client address', () => {
  it('bounds a client address over all its connections (config mint.nut17), and frees its count as they end', async () => {
    // A node as an operator runs it, with its config: 2 subscriptions a connection, 3 an address.
    const node = await startTrustedMint({
      prefix: 'nut17-address',
      mint: { nut17: { maxSubscriptionsPerConnection: 2, maxSubscriptionsPerAddress: 3 } },
    });
    const open: RawClient[] = [];
    try {
      const Y = (i: number) => yOf(`per-address ${i}`);
      const connect = async (from: string) => {
        const c = await RawClient.open(node.mintUrl, from);
        open.push(c);
        return c;
      };
      const a = await connect('127.0.0.1');
      for (let i = 0; i < 2; i++) {
        expect(await a.subscribe(i, `a${i}`, 'proof_state', [Y(i)])).toEqual({
          jsonrpc: '2.0',
          result: { status: 'OK', subId: `a${i}` },
          id: i,
        });
      }
      const perConnection = await a.subscribe(2, 'a2', 'proof_state', [Y(2)]);
      expect(perConnection).toEqual({
        jsonrpc: '2.0',
        error: { code: -32000, message: 'at most 2 subscriptions per connection' },
        id: 2,
      });
      // A second connection from the same address: one more, then the address's bound.
      const b = await connect('127.0.0.1');
      expect(await b.subscribe(10, 'b0', 'proof_state', [Y(10)])).toMatchObject({ result: { status: 'OK' } });
      expect(await b.subscribe(11, 'b1', 'proof_state', [Y(11)])).toEqual({
        jsonrpc: '2.0',
        error: {
          code: -32000,
          message: 'at most 3 subscriptions per client address, over all its connections',
        },
        id: 11,
      });
      // A third connection does not get around it either.
      const c = await connect('127.0.0.1');
      expect((await c.subscribe(20, 'c0', 'proof_state', [Y(20)])).error).toMatchObject({ code: -32000 });
      // Another address is not held back by this one.
      const other = await connect('127.0.0.2');
      expect(await other.subscribe(30, 'o0', 'proof_state', [Y(30)])).toMatchObject({
        result: { status: 'OK' },
      });
      // The refused subscriptions watch nothing: no state was sent for them.
      await new Promise((r) => setTimeout(r, 200));
      const subIds = (x: RawClient) =>
        x.messages.filter((m) => m.method === 'subscribe').map((m) => (m.params as { subId: string }).subId);
      expect(subIds(a)).toEqual(['a0', 'a1']);
      expect(subIds(b)).toEqual(['b0']);
      expect(subIds(c)).toEqual([]);
      // An unsubscribe gives one back to the address; a closed connection gives back all of its own.
      expect(
        await a.call({ jsonrpc: '2.0', id: 40, method: 'unsubscribe', params: { subId: 'a0' } }),
      ).toMatchObject({ result: { status: 'OK' } });
      expect(await b.subscribe(41, 'b1', 'proof_state', [Y(11)])).toMatchObject({ result: { status: 'OK' } });
      expect((await c.subscribe(42, 'c0', 'proof_state', [Y(20)])).error).toMatchObject({ code: -32000 });
      a.close();
      await eventually(
        () => a.closed,
        (x) => x !== undefined,
      );
      await new Promise((r) => setTimeout(r, 100));
      expect(await c.subscribe(43, 'c0', 'proof_state', [Y(20)])).toMatchObject({ result: { status: 'OK' } });
    } finally {
      for (const c of open) c.close();
      await node.close();
    }
  });
});
