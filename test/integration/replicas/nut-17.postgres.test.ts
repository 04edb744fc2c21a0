import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { injectWebSocketImpl, MintQuoteState, type Proof, Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../../../src/config.js';
import { AlacarteNode } from '../../../src/node.js';
import { testDatabase, testPostgresUnavailable } from '../../helpers/postgres.js';

/**
 * NUT-17 across replicas: two nodes (in this process) on one PostgreSQL store, the mint seed
 * copied. A wallet subscribed on replica B, with cashu-ts's own subscription API, hears of a mint
 * quote paid at replica A and of proofs spent at replica A (LISTEN/NOTIFY between the replicas);
 * a keyset rotated on A is B's active keyset at once.
 */
injectWebSocketImpl(WebSocket as unknown as typeof globalThis.WebSocket);

const SETTLE_MS = 2000;
const unavailable = testPostgresUnavailable();
const nodes: Array<{ node: AlacarteNode; url: string; dir: string }> = [];

async function startReplica(storeUrl: string, shareFrom?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-nut17-replica-'));
  if (shareFrom)
    for (const file of ['node.key', 'mint.seed']) copyFileSync(join(shareFrom, file), join(dir, file));
  const config = loadConfig({
    flags: {
      port: 0,
      dataDir: dir,
      logLevel: 'silent',
      store: { url: storeUrl },
      // Invoices settle 2 s after they are made: a subscription made before that hears the payment.
      mint: { lightning: { backend: 'fake', settleDelayMs: SETTLE_MS } },
    },
  });
  const node = await AlacarteNode.create(config);
  const { url } = await node.listen();
  nodes.push({ node, url, dir });
  return { node, url, dir };
}

beforeAll(async () => {
  if (unavailable !== undefined) return;
  const storeUrl = await testDatabase();
  const a = await startReplica(storeUrl);
  await startReplica(storeUrl, a.dir);
});

afterAll(async () => {
  for (const { node, dir } of nodes) {
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

const sum = (proofs: readonly Proof[]) => proofs.reduce((n, p) => n + Number(p.amount), 0);

async function walletAt(i: number): Promise<Wallet> {
  const w = new Wallet(`${nodes[i]!.url}/mint`, { unit: 'sat' });
  await w.loadMint();
  return w;
}

async function eventually<T>(read: () => T | Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await read();
    if (done(value)) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  return read();
}

describe.skipIf(unavailable !== undefined)(`NUT-17 across 2 replicas ${unavailable ?? ''}`, () => {
  it('a wallet subscribed on B hears a quote paid and proofs spent at A', async () => {
    const atA = await walletAt(0);
    const atB = await walletAt(1);
    const quote = await atA.createMintQuoteBolt11(64);
    expect(quote.state).toBe(MintQuoteState.UNPAID);
    const quoteStates: string[] = [];
    const cancelQuote = await atB.on.mintQuoteUpdates(
      [quote.quote],
      (q) => quoteStates.push(q.state),
      () => {},
    );
    // A's Lightning backend settles the invoice; only A hears it from Lightning.
    const paid = await atB.on.onceMintPaid(quote.quote, { timeoutMs: 15_000 });
    expect(paid.state).toBe(MintQuoteState.PAID);
    const proofs = await atA.mintProofsBolt11(64, quote.quote);
    expect(sum(proofs)).toBe(64);
    expect(
      await eventually(
        () => quoteStates,
        (s) => s.includes('ISSUED'),
      ),
    ).toEqual(['UNPAID', 'PAID', 'ISSUED']);
    cancelQuote();

    const proofStates: string[] = [];
    const cancelProofs = await atB.on.proofStateUpdates(
      proofs,
      (p) => proofStates.push(`${p.proof.secret}:${p.state}`),
      () => {},
    );
    await eventually(
      () => proofStates.length,
      (n) => n >= proofs.length,
    );
    // Spent at A: a swap into a part to send and change (an exact amount would need no swap).
    const { keep, send } = await atA.send(40, proofs);
    expect(sum(send) + sum(keep)).toBe(64);
    const spent = await eventually(
      () => proofStates.filter((s) => s.endsWith(':SPENT')).length,
      (n) => n === proofs.length,
    );
    expect(spent).toBe(proofs.length);
    cancelProofs();
  });

  it('a keyset rotated on A is active on B at once, and a wallet at B mints with it', async () => {
    const before = nodes[1]!.node.mint.keys().keysets.map((k) => k.id);
    const rotated = await nodes[0]!.node.mint.rotate();
    expect(before).not.toContain(rotated);
    // B's registry as it stands (no reload of its own): told by A.
    const active = await eventually(
      () => nodes[1]!.node.mint.keys().keysets.map((k) => k.id),
      (ids) => ids.includes(rotated),
    );
    expect(active).toEqual([rotated]);
    const atB = await walletAt(1);
    const quote = await atB.createMintQuoteBolt11(16);
    await atB.on.onceMintPaid(quote.quote, { timeoutMs: 15_000 });
    const proofs = await atB.mintProofsBolt11(16, quote.quote);
    expect(new Set(proofs.map((p) => p.id))).toEqual(new Set([rotated]));
  });
});
