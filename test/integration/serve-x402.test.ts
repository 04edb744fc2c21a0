import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExactEvmScheme } from '@x402/evm/exact/client';
import { wrapFetchWithPaymentFromConfig } from '@x402/fetch';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveNode, tempDir } from '../helpers/cli.js';
import { FACILITATOR_KEY, startTestChain, type TestChain } from '../helpers/evm-chain.js';

/** `alacarte serve` with x402 configured: what the operator sees, and what never shows. */

let chain: TestChain;
beforeAll(async () => {
  chain = await startTestChain();
});
afterAll(async () => {
  await chain?.close();
});

function configFile(): { dataDir: string; file: string } {
  const dataDir = tempDir('data');
  const file = join(dataDir, 'x402-config.json');
  writeFileSync(
    file,
    JSON.stringify({
      x402: {
        network: chain.network,
        rpcUrl: chain.rpcUrl,
        asset: chain.usdc,
        assetName: 'USDC',
        payTo: chain.payTo,
        rate: { atomicUnits: 1000 },
      },
    }),
  );
  return { dataDir, file };
}

describe('alacarte serve with x402 on', () => {
  it('says so in its banner and rents to a stock x402 client; no log line shows the facilitator key or a payment', async () => {
    const { dataDir, file } = configFile();
    const node = await serveNode({
      dataDir,
      args: ['--config', file],
      env: { ALACARTE_X402_FACILITATOR_KEY: FACILITATOR_KEY, ALACARTE_LOG_LEVEL: 'trace' },
    });
    try {
      const payer = await chain.payer(1_000_000n);
      let paymentHeader = '';
      const recording: typeof fetch = async (input, init) => {
        const request = new Request(input, init);
        paymentHeader = request.headers.get('payment-signature') ?? paymentHeader;
        return fetch(request);
      };
      const paying = wrapFetchWithPaymentFromConfig(recording, {
        schemes: [{ network: 'eip155:*', client: new ExactEvmScheme(privateKeyToAccount(payer.key)) }],
      });
      const res = await paying(`${node.url}/v1/leases`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ offer: 'small', seconds: 600, image: 'busybox' }),
      });
      expect(res.status).toBe(201);
      expect(paymentHeader).not.toBe('');
      const output = node.output();
      expect(output).toContain(
        `x402: on (${chain.network}, asset ${chain.usdc}, paid to ${chain.payTo}; refunds and change as ecash of this mint)`,
      );
      expect(output.toLowerCase()).not.toContain(FACILITATOR_KEY.slice(2).toLowerCase());
      expect(output).not.toContain(paymentHeader.slice(0, 40));
    } finally {
      await node.stop();
    }
  });

  it('refuses to start without the facilitator key, naming where to put it', async () => {
    const { dataDir, file } = configFile();
    const env = { ...process.env };
    delete env.ALACARTE_X402_FACILITATOR_KEY;
    const started = await serveNode({ dataDir, args: ['--config', file], env }).catch((err: Error) => err);
    expect(started).toBeInstanceOf(Error);
    expect((started as Error).message).toContain('x402.facilitatorKeyPath or ALACARTE_X402_FACILITATOR_KEY');
  });
});
