import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wallet } from '@cashu/cashu-ts';
import { loadConfig } from '../../../src/config.js';
import { NodeSecret } from '../../../src/leases/node-secret.js';
import { AlacarteNode } from '../../../src/node.js';
import { CashuRail } from '../../../src/rails/cashu/cashu-rail.js';
import { createFacilitator } from '../../../src/rails/x402/facilitator.js';
import { X402Rail } from '../../../src/rails/x402/x402-rail.js';
import type { X402Settings } from '../../../src/rails/x402/x402-settings.js';
import { FACILITATOR_KEY, startTestChain } from '../../helpers/evm-chain.js';
import { sumOf } from '../../helpers/lease-node.js';
import { x402PaymentFor } from '../../helpers/x402-payer.js';
import { paymentRailContract, type RailFixture } from './payment-rail.contract.js';

paymentRailContract('x402 (an EIP-3009 stablecoin on an EVM chain)', async (): Promise<RailFixture> => {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-rail-'));
  const node = await AlacarteNode.create(
    loadConfig({ flags: { port: 0, dataDir: dir, logLevel: 'silent' } }),
  );
  const { mintUrl } = await node.listen();
  const secret = NodeSecret.loadOrCreate(join(dir, 'node.key'));
  const chain = await startTestChain();
  const settings: X402Settings = {
    network: chain.network,
    asset: chain.usdc,
    assetName: 'USDC',
    assetVersion: '2',
    payTo: chain.payTo,
    // 1 sat = 1000 units (0.001 of a 6-decimal dollar).
    rate: { atomicUnits: 1000n, sats: 1n },
    maxTimeoutSeconds: 300,
  };
  const payouts = new CashuRail({
    mint: node.mint.nodePayments(),
    mintUrl: () => mintUrl,
    unit: 'sat',
    secret,
    db: node.db,
  });
  const rail = new X402Rail({
    db: node.db,
    settings,
    facilitator: createFacilitator({ settings, rpcUrl: chain.rpcUrl, privateKey: FACILITATOR_KEY }),
    payouts,
    mintUrl: () => mintUrl,
    resourceUrl: () => `${node.url}/v1/leases`,
    unit: 'sat',
  });
  return {
    rail,
    db: node.db,
    async pay(price, subject) {
      const payer = await chain.payer(1_000_000n);
      const challenge = await rail.challenge(price, subject);
      const { headers } = await x402PaymentFor(payer.key, String(challenge.headers['payment-required']));
      return headers;
    },
    // Settled on the chain before the record: a payment whose record failed comes back as ecash.
    unused: 'returned',
    async receive(token) {
      const wallet = new Wallet(mintUrl, { unit: 'sat' });
      await wallet.loadMint();
      return sumOf(await wallet.receive(token));
    },
    async close() {
      await node.close();
      await chain.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
