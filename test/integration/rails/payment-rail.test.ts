import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wallet } from '@cashu/cashu-ts';
import { loadConfig } from '../../../src/config.js';
import { NodeSecret } from '../../../src/leases/node-secret.js';
import { AlacarteNode } from '../../../src/node.js';
import { CashuRail } from '../../../src/rails/cashu/cashu-rail.js';
import { L402Rail } from '../../../src/rails/l402/l402-rail.js';
import { fundedWallet, startMintNode, sumOf, tokenOf } from '../../helpers/lease-node.js';
import { paymentRailContract, type RailFixture } from './payment-rail.contract.js';

/** A wallet of `mintUrl` takes `token` (a swap at that mint); what it was worth. */
async function receiveAt(mintUrl: string, token: string): Promise<number> {
  const wallet = new Wallet(mintUrl, { unit: 'sat' });
  await wallet.loadMint();
  return sumOf(await wallet.receive(token));
}

/** A node serving its mint (no driver), with the rails built on its store, mint and Lightning. */
async function ownNode() {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-rail-'));
  const node = await AlacarteNode.create(
    loadConfig({ flags: { port: 0, dataDir: dir, logLevel: 'silent' } }),
  );
  const { mintUrl } = await node.listen();
  const secret = NodeSecret.loadOrCreate(join(dir, 'node.key'));
  return {
    node,
    mintUrl,
    secret,
    async close() {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

paymentRailContract('Cashu, the node’s own mint', async (): Promise<RailFixture> => {
  const own = await ownNode();
  const rail = new CashuRail({
    mint: own.node.mint.nodePayments(),
    mintUrl: () => own.mintUrl,
    unit: 'sat',
    secret: own.secret,
    db: own.node.db,
  });
  return {
    rail,
    db: own.node.db,
    async pay(price) {
      const { wallet, proofs } = await fundedWallet(own.mintUrl, price.toNumber());
      const { token } = await tokenOf(wallet, own.mintUrl, proofs, price.toNumber());
      return { 'x-cashu': token };
    },
    unused: 'untouched',
    receive: (token) => receiveAt(own.mintUrl, token),
    close: () => own.close(),
  };
});

paymentRailContract('Cashu, a trusted mint', async (): Promise<RailFixture> => {
  const own = await ownNode();
  const trusted = await startMintNode();
  const rail = new CashuRail({
    mint: own.node.mint.nodePayments(),
    mintUrl: () => own.mintUrl,
    unit: 'sat',
    secret: own.secret,
    db: own.node.db,
    trustedMints: [trusted.mintUrl],
  });
  return {
    rail,
    db: own.node.db,
    async pay(price) {
      const { wallet, proofs } = await fundedWallet(trusted.mintUrl, price.toNumber());
      const { token } = await tokenOf(wallet, trusted.mintUrl, proofs, price.toNumber());
      return { 'x-cashu': token };
    },
    unused: 'returned',
    receive: (token) => receiveAt(trusted.mintUrl, token),
    async close() {
      await own.close();
      await trusted.close();
    },
  };
});

paymentRailContract('L402 (Lightning)', async (): Promise<RailFixture> => {
  const own = await ownNode();
  const payouts = new CashuRail({
    mint: own.node.mint.nodePayments(),
    mintUrl: () => own.mintUrl,
    unit: 'sat',
    secret: own.secret,
    db: own.node.db,
  });
  const rail = new L402Rail({
    db: own.node.db,
    secret: own.secret,
    lightning: own.node.lightning,
    payouts,
    mintUrl: () => own.mintUrl,
    unit: 'sat',
  });
  return {
    rail,
    db: own.node.db,
    async pay(price, subject) {
      const challenge = await rail.challenge(price, subject);
      const { invoice, macaroon } = challenge.body.l402 as { invoice: string; macaroon: string };
      // Paid by melting ecash at the node's own mint, as a Cashu wallet pays any invoice.
      const { wallet, proofs } = await fundedWallet(own.mintUrl, price.toNumber() + 10);
      const quote = await wallet.createMeltQuoteBolt11(invoice);
      const melted = await wallet.meltProofsBolt11(quote, proofs);
      return { authorization: `L402 ${macaroon}:${melted.quote.payment_preimage}` };
    },
    unused: 'returned',
    receive: (token) => receiveAt(own.mintUrl, token),
    close: () => own.close(),
  };
});
