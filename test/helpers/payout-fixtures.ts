import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { type ConfigInput, loadConfig } from '../../src/config.js';
import { type MintBooks, mintBooks } from '../../src/mint/books.js';
import { AlacarteNode } from '../../src/node.js';
import type { Database } from '../../src/store/database.js';
import {
  fundedWallet,
  type LeaseTestNode,
  ledgerOf,
  type OperatorLedger,
  postJson,
  startLeaseNode,
  tokenOf,
} from './lease-node.js';
import { testDatabase } from './postgres.js';

/**
 * The payout tests' offer (config-file form): 100 sat a second, sold from 1 s, so a 3 s lease
 * earns 300 sat and ends by itself.
 */
export const BURST_OFFER = {
  id: 'burst',
  vcpu: 0.25,
  memory_mib: 64,
  pids: 64,
  disk_mib: 16,
  price: { amount_per_hour: 360_000, unit: 'sat' as const },
  min_seconds: 1,
  max_seconds: 60,
};

/** Another operator's mint (a node serving only its mint), its store at hand for its books. */
export interface TrustedMint {
  mintUrl: string;
  db: Database;
  /** The mint's own books (what it issued, took in and paid out over Lightning). */
  books(): Promise<MintBooks>;
  /** Closes the node and removes its data directory. */
  close(): Promise<void>;
}

/**
 * Starts a trusted mint on loopback, its data in a new temporary directory named after `prefix`;
 * `mint` is its mint's configuration (input fees, a slow Lightning), and `postgres` puts its store
 * on the test PostgreSQL server.
 */
export async function startTrustedMint(options: {
  prefix: string;
  mint?: ConfigInput['mint'];
  postgres?: boolean;
}): Promise<TrustedMint> {
  const dir = mkdtempSync(join(tmpdir(), `alacarte-${options.prefix}-`));
  const store = options.postgres ? { store: { url: await testDatabase(dir) } } : {};
  const node = await AlacarteNode.create(
    loadConfig({
      flags: {
        port: 0,
        dataDir: dir,
        logLevel: 'silent',
        ...store,
        ...(options.mint ? { mint: options.mint } : {}),
      },
    }),
  );
  const { mintUrl } = await node.listen();
  return {
    mintUrl,
    db: node.db,
    books: () => mintBooks(node.db),
    async close() {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A 3 s BURST_OFFER lease on the node at `nodeUrl`, paid at `mintUrl`: 300 sat earned there once it ends. */
export async function earnAt(nodeUrl: string, mintUrl: string): Promise<void> {
  const { wallet, proofs } = await fundedWallet(mintUrl, 400);
  const paid = await tokenOf(wallet, mintUrl, proofs, 300);
  const created = await postJson(
    `${nodeUrl}/v1/leases`,
    { offer: 'burst', seconds: 3, image: 'busybox' },
    { 'x-cashu': paid.token },
  );
  expect(created.status).toBe(201);
}

/** The operator's ledger once no lease runs on the node at `nodeUrl` (polled, at most 20 s). */
export async function untilNoneRunning(nodeUrl: string, operatorToken: string): Promise<OperatorLedger> {
  for (let i = 0; i < 100; i++) {
    const books = await ledgerOf(nodeUrl, operatorToken);
    if (books.leases.running === 0) return books;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('leases did not end');
}

/** A trusted mint and a lease node that takes its ecash, both up for a payout test. */
export interface PayoutNodes {
  trusted: TrustedMint;
  /** Sells BURST_OFFER, takes the trusted mint's ecash, its operator's token the one asked for. */
  renter: LeaseTestNode;
  /** Closes the lease node, then the trusted mint. */
  close(): Promise<void>;
}

/**
 * Starts a trusted mint (its data directory named after `prefix`) and a lease node paid there;
 * `mint` configures the lease node's own mint (a slow Lightning, say). When the lease node cannot
 * start, the trusted mint is closed again before the error is thrown.
 */
export async function startPayoutNodes(options: {
  prefix: string;
  operatorToken: string;
  mint?: ConfigInput['mint'];
}): Promise<PayoutNodes> {
  const trusted = await startTrustedMint({ prefix: options.prefix });
  try {
    const renter = await startLeaseNode({
      trustedMints: [trusted.mintUrl],
      operatorToken: options.operatorToken,
      offers: [BURST_OFFER],
      ...(options.mint ? { mint: options.mint } : {}),
    });
    return {
      trusted,
      renter,
      async close() {
        await renter.close();
        await trusted.close();
      },
    };
  } catch (err) {
    await trusted.close();
    throw err;
  }
}
