import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getEncodedToken, type Proof, Wallet } from '@cashu/cashu-ts';
import { type ConfigInput, loadConfig } from '../../src/config.js';
import { CrunDriver } from '../../src/drivers/crun/crun-driver.js';
import { createLogger } from '../../src/log.js';
import { AlacarteNode } from '../../src/node.js';

/** A real node (store, mint, crun sandboxes, HTTP on loopback) in this process, for lease tests. */
export interface LeaseTestNode {
  node: AlacarteNode;
  driver: CrunDriver;
  url: string;
  mintUrl: string;
  dataDir: string;
  close(): Promise<void>;
}

export async function startLeaseNode(config: ConfigInput = {}, dataDir?: string): Promise<LeaseTestNode> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'alacarte-lease-'));
  // mkdtemp makes it 0700; the sandboxes' unprivileged ids must traverse it, as the node arranges.
  chmodSync(dir, 0o711);
  const cfg = loadConfig({ flags: { port: 0, dataDir: dir, logLevel: 'silent', ...config } });
  const logger = process.env.ALACARTE_TEST_LOG ? createLogger({ level: 'debug' }) : undefined;
  const driver = await CrunDriver.create({
    runtimeDir: join(dir, 'sandboxes'),
    imagesDir: join(dir, 'images'),
    warmLayers: 2,
  });
  const node = await AlacarteNode.create(cfg, { driver, images: ['busybox'], logger });
  const { url, mintUrl } = await node.listen();
  return {
    node,
    driver,
    url,
    mintUrl,
    dataDir: dir,
    async close() {
      // Leave no sandbox behind, whatever the test did.
      for (const s of await driver.list()) await driver.stop(s);
      await node.close();
      await driver.close();
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A cashu-ts wallet of the node's mint, funded through the fake Lightning backend. */
export async function fundedWallet(
  mintUrl: string,
  amount: number,
): Promise<{ wallet: Wallet; proofs: Proof[] }> {
  const wallet = new Wallet(mintUrl, { unit: 'sat' });
  await wallet.loadMint();
  const quote = await wallet.createMintQuoteBolt11(amount);
  const proofs = await wallet.mintProofsBolt11(amount, quote.quote);
  return { wallet, proofs };
}

/** A token of exactly `amount` split off `proofs`; returns it and the proofs kept. */
export async function tokenOf(
  wallet: Wallet,
  mintUrl: string,
  proofs: Proof[],
  amount: number,
): Promise<{ token: string; keep: Proof[]; send: Proof[] }> {
  const { keep, send } = await wallet.send(amount, proofs);
  return { token: getEncodedToken({ mint: mintUrl, proofs: send, unit: 'sat' }), keep, send };
}

export function sumOf(proofs: readonly Proof[]): number {
  return proofs.reduce((n, p) => n + Number(p.amount.toBigInt()), 0);
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  method = 'POST',
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}
