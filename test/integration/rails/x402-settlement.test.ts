import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SettleResponse, VerifyResponse } from '@x402/core/types';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { Amount } from '../../../src/core/amount.js';
import { AlacarteError } from '../../../src/core/errors.js';
import { NodeSecret } from '../../../src/leases/node-secret.js';
import { AlacarteNode } from '../../../src/node.js';
import { CashuRail } from '../../../src/rails/cashu/cashu-rail.js';
import type { PaymentSubject } from '../../../src/rails/payment-rail.js';
import type { Execution, X402Facilitator } from '../../../src/rails/x402/facilitator.js';
import { X402Rail } from '../../../src/rails/x402/x402-rail.js';
import type { X402Settings } from '../../../src/rails/x402/x402-settings.js';
import { x402PaymentFor } from '../../helpers/x402-payer.js';

/**
 * The x402 rail against a facilitator that answers as told (no chain): what the rail makes of a
 * settlement that fails, a settlement whose answer was lost, and a chain that does not answer.
 */

const settings: X402Settings = {
  network: 'eip155:84532',
  asset: '0x036CbD53842c5426634e7929541eC2318f3dCF7e',
  assetName: 'USDC',
  assetVersion: '2',
  payTo: privateKeyToAccount(generatePrivateKey()).address,
  rate: { atomicUnits: 1000n, sats: 1n },
  maxTimeoutSeconds: 300,
};
const subject: PaymentSubject = { kind: 'create', offer: 'small', seconds: 3600, image: 'busybox' };
const price = Amount.of(60);

/** A facilitator whose answers the test sets; it counts settlements. */
class ScriptedFacilitator implements X402Facilitator {
  verified: VerifyResponse | Error = { isValid: true };
  settled: SettleResponse = { success: true, transaction: `0x${'ab'.repeat(32)}`, network: settings.network };
  execution: Execution = { used: false };
  settlements = 0;
  async verify(): Promise<VerifyResponse> {
    if (this.verified instanceof Error) throw this.verified;
    return this.verified;
  }
  async settle(): Promise<SettleResponse> {
    this.settlements++;
    return this.settled;
  }
  async executionOf(): Promise<Execution> {
    return this.execution;
  }
}

let node: AlacarteNode;
let dir: string;
let rail: X402Rail;
let facilitator: ScriptedFacilitator;
let payouts: CashuRail;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'alacarte-x402-'));
  node = await AlacarteNode.create(loadConfig({ flags: { port: 0, dataDir: dir, logLevel: 'silent' } }));
  const { mintUrl } = await node.listen();
  payouts = new CashuRail({
    mint: node.mint.nodePayments(),
    mintUrl: () => mintUrl,
    unit: 'sat',
    secret: NodeSecret.loadOrCreate(join(dir, 'node.key')),
    db: node.db,
  });
  facilitator = new ScriptedFacilitator();
  rail = new X402Rail({
    db: node.db,
    settings,
    facilitator,
    payouts,
    mintUrl: () => mintUrl,
    resourceUrl: () => `${node.url}/v1/leases`,
    unit: 'sat',
  });
});
afterAll(async () => {
  await node?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function payment() {
  const challenge = await rail.challenge(price, subject);
  const { headers } = await x402PaymentFor(
    generatePrivateKey(),
    String(challenge.headers['payment-required']),
  );
  return headers;
}

async function redeem(headers: Record<string, string>) {
  let recorded = 0;
  const outcome = await rail.redeem(
    {
      headers,
      subject,
      record: async () => {
        recorded++;
      },
    },
    price,
  );
  const rows = await node.db.selectFrom('x402_payments').selectAll().execute();
  return { outcome, recorded, rows };
}

describe('x402 rail and its facilitator', () => {
  it('grants nothing when the settlement fails, and claims nothing', async () => {
    facilitator.settled = {
      success: false,
      errorReason: 'invalid_exact_evm_transaction_failed',
      transaction: '',
      network: settings.network,
    };
    const before = (await node.db.selectFrom('x402_payments').selectAll().execute()).length;
    const { outcome, recorded, rows } = await redeem(await payment());
    expect(outcome).toMatchObject({ ok: false, code: 'x402_settlement_failed' });
    expect(recorded).toBe(0);
    expect(rows.length).toBe(before);
    // Its transaction may have gone out: the journal keeps it for the sweep (dropped once expired).
    expect(await node.db.selectFrom('x402_settlements').selectAll().execute()).toHaveLength(1);
  });

  it('grants nothing when the facilitator finds the payment invalid (a payer without funds)', async () => {
    facilitator.verified = { isValid: false, invalidReason: 'invalid_exact_evm_insufficient_balance' };
    const settlements = facilitator.settlements;
    const { outcome, recorded } = await redeem(await payment());
    expect(outcome).toMatchObject({ ok: false, code: 'x402_settlement_failed' });
    expect(recorded).toBe(0);
    expect(facilitator.settlements).toBe(settlements);
    facilitator.verified = { isValid: true };
  });

  it('takes a payment whose settlement answer was lost once the chain shows it paid the operator', async () => {
    facilitator.settled = {
      success: false,
      errorReason: 'timeout',
      transaction: '',
      network: settings.network,
    };
    facilitator.execution = { used: true, tx: `0x${'cd'.repeat(32)}` };
    const { outcome, recorded, rows } = await redeem(await payment());
    expect(outcome).toMatchObject({ ok: true, rail: 'x402' });
    expect(recorded).toBe(1);
    expect(rows.at(-1)).toMatchObject({ tx: `0x${'cd'.repeat(32)}`, outcome: 'claimed', atomic: '60000' });
    facilitator.execution = { used: false };
  });

  it('answers a settlement sent but not yet confirmed with x402_unavailable, and the retry of the same payment takes it once mined', async () => {
    facilitator.settled = {
      success: false,
      errorReason: 'settlement_pending',
      transaction: `0x${'ef'.repeat(32)}`,
      network: settings.network,
    };
    const headers = await payment();
    const before = (await node.db.selectFrom('x402_payments').selectAll().execute()).length;
    let recorded = 0;
    const err = await rail
      .redeem({ headers, subject, record: async () => void recorded++ }, price)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlacarteError);
    expect((err as AlacarteError).code).toBe('x402_unavailable');
    expect(recorded).toBe(0);
    expect((await node.db.selectFrom('x402_payments').selectAll().execute()).length).toBe(before);
    // Mined meanwhile: the same payment again is found on the chain and bought once.
    facilitator.execution = { used: true, tx: `0x${'ef'.repeat(32)}` };
    const retry = await redeem(headers);
    expect(retry.outcome).toMatchObject({ ok: true, rail: 'x402' });
    expect(retry.recorded).toBe(1);
    expect(retry.rows.length).toBe(before + 1);
    facilitator.execution = { used: false };
    facilitator.settled = { success: true, transaction: `0x${'ab'.repeat(32)}`, network: settings.network };
  });

  it('drops a journaled settlement whose nonce went to another transfer of its payer, booking nothing', async () => {
    // No retry window: the sweep takes every row at once.
    const sweeping = new X402Rail({
      db: node.db,
      settings,
      facilitator,
      payouts,
      mintUrl: () => `${node.url}/mint`,
      resourceUrl: () => `${node.url}/v1/leases`,
      unit: 'sat',
      settlementGraceMs: 0,
    });
    facilitator.settled = {
      success: false,
      errorReason: 'settlement_pending',
      transaction: `0x${'12'.repeat(32)}`,
      network: settings.network,
    };
    const headers = await payment();
    const journal = () => node.db.selectFrom('x402_settlements').selectAll().execute();
    const before = (await journal()).length;
    const err = await sweeping
      .redeem({ headers, subject, record: async () => {} }, price)
      .catch((e: unknown) => e);
    expect((err as AlacarteError).code).toBe('x402_unavailable');
    expect((await journal()).length).toBe(before + 1);
    const claims = (await node.db.selectFrom('x402_payments').selectAll().execute()).length;
    // The chain: the nonce used, by a transfer that did not pay the operator.
    facilitator.execution = { used: true };
    const swept = await sweeping.sweepSettlements();
    // Every row left (also the failed settlement's above) is one such nonce here: all dropped.
    expect(swept).toMatchObject({ dropped: before + 1, returned: 0 });
    expect(await journal()).toEqual([]);
    expect((await node.db.selectFrom('x402_payments').selectAll().execute()).length).toBe(claims);
    facilitator.execution = { used: false };
    facilitator.settled = { success: true, transaction: `0x${'ab'.repeat(32)}`, network: settings.network };
  });

  it('says the chain is unavailable when the facilitator cannot reach it, taking nothing', async () => {
    facilitator.verified = new Error('fetch failed');
    const headers = await payment();
    const err = await rail
      .redeem({ headers, subject, record: async () => {} }, price)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlacarteError);
    expect((err as AlacarteError).code).toBe('x402_unavailable');
    facilitator.verified = { isValid: true };
  });
});
