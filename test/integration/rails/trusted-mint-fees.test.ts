import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckStateEnum, getDecodedToken, getTokenMetadata, type Wallet } from '@cashu/cashu-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConfigInput, loadConfig } from '../../../src/config.js';
import type { ComputeDriver, SandboxHandle } from '../../../src/drivers/compute-driver.js';
import { AlacarteNode } from '../../../src/node.js';
import { fundedWallet, postJson, sumOf, tokenOf } from '../../helpers/lease-node.js';

/**
 * Trusted-mint money paths that need no real sandbox: a mint that charges NUT-02 input fees, and
 * a start that fails after payment. The renting node runs a stand-in driver (start can be made to
 * fail); everything else is real: both nodes, their mints, HTTP, a cashu-ts wallet.
 */
class StandInDriver implements ComputeDriver {
  readonly id = 'stand-in';
  failStart = false;
  private readonly running = new Map<string, SandboxHandle>();
  async capacity() {
    return { vcpu: 64, memoryMib: 65_536, diskMib: 65_536, sandboxes: 100 };
  }
  async start(spec: { leaseId: string }, _limits: unknown, deadline: Date): Promise<SandboxHandle> {
    if (this.failStart) throw new Error('stand-in start failure');
    const handle = { leaseId: spec.leaseId, deadline, ports: {} };
    this.running.set(spec.leaseId, handle);
    return handle;
  }
  async exec(): Promise<never> {
    throw new Error('no exec in the stand-in driver');
  }
  async attach(): Promise<never> {
    throw new Error('no attach in the stand-in driver');
  }
  async setDeadline(ref: { leaseId: string }, deadline: Date) {
    const handle = this.running.get(ref.leaseId);
    if (handle) handle.deadline = deadline;
  }
  async stop(ref: { leaseId: string }) {
    this.running.delete(ref.leaseId);
  }
  async list() {
    return [...this.running.values()];
  }
  async close() {}
}

async function startNode(config: ConfigInput, driver?: ComputeDriver) {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-extfee-'));
  const node = await AlacarteNode.create(
    loadConfig({ flags: { port: 0, dataDir: dir, logLevel: 'silent', ...config } }),
    { driver },
  );
  const { url, mintUrl } = await node.listen();
  return {
    node,
    url,
    mintUrl,
    async close() {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const OPERATOR = 'operator-token-for-fee-tests-0123';
const createBody = { offer: 'small', seconds: 7200, image: 'busybox' };
let feeMint: Awaited<ReturnType<typeof startNode>>;
let renter: Awaited<ReturnType<typeof startNode>>;
const driver = new StandInDriver();

beforeAll(async () => {
  feeMint = await startNode({ mint: { inputFeePpk: 100 } });
  renter = await startNode({ trustedMints: [feeMint.mintUrl], operatorToken: OPERATOR }, driver);
});
afterAll(async () => {
  await renter?.close();
  await feeMint?.close();
});

function value(token: string, wallet: Wallet): number {
  return sumOf(
    getDecodedToken(
      token,
      wallet.keyChain.getKeysets().map((k) => k.id),
    ).proofs,
  );
}

describe('a trusted mint that charges input fees', () => {
  it('takes the NUT-02 fee out of the change, and refunds exactly what the lease owes', async () => {
    const { wallet, proofs } = await fundedWallet(feeMint.mintUrl, 300);
    const { token, send } = await tokenOf(wallet, feeMint.mintUrl, proofs, 130);
    const fee = Math.ceil((send.length * 100) / 1000);
    const res = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
    expect(res.status).toBe(201);
    const change = res.body.change as string;
    expect(getTokenMetadata(change).mint).toBe(feeMint.mintUrl);
    expect(value(change, wallet)).toBe(130 - 120 - fee);
    expect((await wallet.checkProofsStates(send)).map((s) => s.state)).toEqual(
      send.map(() => CheckStateEnum.SPENT),
    );
    await wallet.receive(change);

    const stop = await postJson(
      `${renter.url}/v1/leases/${res.body.id}`,
      undefined,
      { authorization: `Bearer ${res.body.token}` },
      'DELETE',
    );
    expect(stop.status).toBe(200);
    const refund = stop.body.refund as string;
    expect(value(refund, wallet)).toBe(stop.body.refunded);
    await wallet.receive(refund);
  });

  it('gives everything back, less only the mint fee, when the sandbox fails to start', async () => {
    const { wallet, proofs } = await fundedWallet(feeMint.mintUrl, 300);
    const { token, send } = await tokenOf(wallet, feeMint.mintUrl, proofs, 130);
    const fee = Math.ceil((send.length * 100) / 1000);
    driver.failStart = true;
    try {
      const res = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('start_failed');
      expect(res.body.refunded).toBe(130 - fee);
      const refund = res.body.refund as string;
      expect(getTokenMetadata(refund).mint).toBe(feeMint.mintUrl);
      expect(value(refund, wallet)).toBe(130 - fee);
      // The replay shows the same refund.
      const replay = await postJson(`${renter.url}/v1/leases`, createBody, { 'x-cashu': token });
      expect(replay.body).toEqual(res.body);
      await wallet.receive(refund);
    } finally {
      driver.failStart = false;
    }
  });

  it('keeps the operator ledger balanced', async () => {
    const books = (await (
      await fetch(`${renter.url}/v1/operator/ledger`, { headers: { authorization: `Bearer ${OPERATOR}` } })
    ).json()) as { received: number; charged: number; refunded: number; held: number };
    expect(books.received).toBeGreaterThan(0);
    expect(books.received).toBe(books.charged + books.refunded + books.held);
  });
});
