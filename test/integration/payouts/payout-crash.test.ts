import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Amount } from '../../../src/core/amount.js';
import { FakeLightningBackend } from '../../../src/lightning/fake/fake-lightning.js';
import { CLI } from '../../helpers/cli.js';
import { expectBalanced, ledgerOf, postJson } from '../../helpers/lease-node.js';
import { NodeProcess } from '../../helpers/node-process.js';
import {
  BURST_OFFER,
  earnAt,
  startTrustedMint,
  type TrustedMint,
  untilNoneRunning,
} from '../../helpers/payout-fixtures.js';
import { type ProcessResult, runProcess } from '../../helpers/run-process.js';

/**
 * A kill -9 of the built node while a payout's melt is in flight at the trusted mint: the payout
 * was booked pending before the melt, the trusted mint pays the invoice meanwhile, and the node's
 * next start books it paid — once: one payout row, the trusted mint paid once, the books balance.
 * Then `alacarte payout` (the CLI, on the same data directory) pays out of the own mint.
 */
const OPERATOR = 'operator-token-for-payout-crash-000';
const MELT_DELAY_MS = 3000;
let trusted: TrustedMint;
let trustedMintUrl: string;
let nodeProcess: NodeProcess;
const operatorWallet = new FakeLightningBackend();
const invoice = async (sat: number) => (await operatorWallet.createInvoice(Amount.of(sat), 'payout')).bolt11;

beforeAll(async () => {
  // The trusted mint's Lightning takes its time to pay: the melt stays pending that long.
  trusted = await startTrustedMint({
    prefix: 'payout-crash-mint',
    mint: { lightning: { payDelayMs: MELT_DELAY_MS } },
  });
  trustedMintUrl = trusted.mintUrl;
  nodeProcess = new NodeProcess({
    prefix: 'payout-crash',
    config: { trustedMints: [trustedMintUrl], offers: [BURST_OFFER] },
    env: { ALACARTE_OPERATOR_TOKEN: OPERATOR },
  });
});
afterAll(async () => {
  await nodeProcess?.cleanup();
  await trusted?.close();
});

/** Runs the built `alacarte payout` to its end, quiet (its stdin closed at once). */
function runPayoutCli(args: string[]): Promise<ProcessResult> {
  return runProcess(process.execPath, [CLI, 'payout', ...args], { env: { ALACARTE_LOG_LEVEL: 'silent' } });
}

describe('kill -9 in the middle of a payout', () => {
  it('resolves the payout exactly once after a restart; the CLI pays out and says so', async () => {
    expect(existsSync(CLI), 'run `npm run build` first (npm test does)').toBe(true);
    let server = await nodeProcess.start();
    for (const mintUrl of [trustedMintUrl, server.mintUrl]) await earnAt(server.url, mintUrl);
    const start = await untilNoneRunning(server.url, OPERATOR);
    const theirsBefore = await trusted.books();

    const answer = await postJson(
      `${server.url}/v1/operator/payout`,
      { to: await invoice(200), from: trustedMintUrl },
      { authorization: `Bearer ${OPERATOR}` },
    );
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ paid: 200, state: 'pending' });
    await nodeProcess.kill();
    // Not paid yet at the trusted mint: its Lightning is still at it.
    expect((await trusted.books()).lightning_out).toBe(theirsBefore.lightning_out);

    await new Promise((r) => setTimeout(r, MELT_DELAY_MS + 1500));
    server = await nodeProcess.start();
    const books = await ledgerOf(server.url, OPERATOR);
    expect(books.payouts).toHaveLength(1);
    expect(books.payouts[0]).toMatchObject({ source: trustedMintUrl, amount: 200, state: 'paid' });
    const fee = books.payouts[0]!.fee!;
    expect(fee).toBeGreaterThanOrEqual(0);
    expect(books.by_mint.trusted[0]).toMatchObject({ charged: 300, paid_out: 200 + fee, payout_pending: 0 });
    expect(expectBalanced(books)).toEqual([]);
    const theirs = await trusted.books();
    expect(theirs.lightning_out).toBe(theirsBefore.lightning_out + 200);
    expect(theirs.outstanding).toBe(theirs.lightning_in - theirs.lightning_out);

    // The CLI, on the node's data directory (the node stopped: on the fake backend, whose payments
    // are the node process's own, it refuses to run beside it), pays out of the own mint and
    // prints what it paid.
    await nodeProcess.kill();
    const cli = await runPayoutCli([
      '--to',
      await invoice(120),
      '--from',
      'own',
      '--data',
      nodeProcess.dataDir,
      '--config',
      nodeProcess.configFile,
    ]);
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/^paid 120 sat \(fee 0 sat\) from the own mint\npayout [0-9a-f-]{36}\n$/);
    const refused = await runPayoutCli([
      '--to',
      await invoice(500),
      '--data',
      nodeProcess.dataDir,
      '--config',
      nodeProcess.configFile,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/payout refused \(payout_too_large\)/);
    server = await nodeProcess.start();
    const after = await ledgerOf(server.url, OPERATOR);
    expect(after.payouts.map((p) => [p.source, p.amount, p.state])).toEqual([
      ['own', 120, 'paid'],
      [trustedMintUrl, 200, 'paid'],
    ]);
    expect(after.mint.lightning_out).toBe(start.mint.lightning_out + 120);
    expect(expectBalanced(after)).toEqual([]);
  });
});
