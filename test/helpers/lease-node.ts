import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckStateEnum, getEncodedToken, type Proof, Wallet } from '@cashu/cashu-ts';
import { type ConfigInput, loadConfig } from '../../src/config.js';
import type { ComputeDriver, ImageDetail } from '../../src/drivers/compute-driver.js';
import { CrunDriver } from '../../src/drivers/crun/crun-driver.js';
import type { CrunDriverOptions } from '../../src/drivers/crun/crun-options.js';
import type { MintFigures } from '../../src/leases/ledger.js';
import { createLogger, type Logger } from '../../src/log.js';
import { AlacarteNode, type NodeOptions } from '../../src/node.js';
import { testDatabase, testStoreIsPostgres } from './postgres.js';

/** A real node (store, mint, crun sandboxes, HTTP on loopback) in this process, for lease tests. */
export interface LeaseTestNode {
  node: AlacarteNode;
  driver: CrunDriver;
  url: string;
  mintUrl: string;
  dataDir: string;
  /** Stops every sandbox (unless `keepSandboxes`, to simulate a node going down) and the node. */
  close(options?: { keepSandboxes?: boolean }): Promise<void>;
}

/** What a test may change beyond the config: image list, logger, clock, driver knobs. */
export interface LeaseNodeExtras {
  /**
   * Image names the node offers (default ['busybox']); names absent from the images dir fail to
   * start. Or a function read on each request, as `serve` passes its images directory.
   */
  images?: string[] | (() => readonly ImageDetail[]);
  logger?: Logger;
  clock?: () => Date;
  driver?: Partial<Pick<CrunDriverOptions, 'overcommit' | 'warmLayers' | 'imagesDir'>>;
  /** When terminals are told that their lease ends (ms before it). */
  deadlineNoticeOffsetsMs?: readonly number[];
  /** What the node gets as its driver, around the real one (to make a driver call fail for real). */
  wrapDriver?: (driver: CrunDriver) => ComputeDriver;
  /** What the x402 rail settles through, around the facilitator the node built (NodeOptions). */
  x402Facilitator?: NodeOptions['x402Facilitator'];
}

/**
 * A config offer of `vcpu` vCPUs (64 MiB, 64 pids, 16 MiB disk) at `perHour` sat an hour, sold
 * from 60 s to 30 days.
 */
export const satOffer = (id: string, vcpu: number, perHour: number) => ({
  id,
  vcpu,
  memory_mib: 64,
  pids: 64,
  disk_mib: 16,
  price: { amount_per_hour: perHour, unit: 'sat' as const },
  min_seconds: 60,
  max_seconds: 30 * 24 * 3600,
});

export async function startLeaseNode(
  config: ConfigInput = {},
  dataDir?: string,
  extras: LeaseNodeExtras = {},
): Promise<LeaseTestNode> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'alacarte-lease-'));
  // mkdtemp makes it 0700; the sandboxes' unprivileged ids must traverse it, as the node arranges.
  chmodSync(dir, 0o711);
  // SSH on a free port: test nodes run side by side.
  // In the `postgres` test project the store is a database of the run's server, one per data dir
  // (a node restarted on its data dir finds its store again).
  const store = testStoreIsPostgres() && !config.store ? { store: { url: await testDatabase(dir) } } : {};
  const cfg = loadConfig({
    flags: { port: 0, dataDir: dir, logLevel: 'silent', ssh: { port: 0 }, ...store, ...config },
  });
  const logger =
    extras.logger ?? (process.env.ALACARTE_TEST_LOG ? createLogger({ level: 'debug' }) : undefined);
  // Named after the data directory (a restarted node finds its sandboxes), with runtime state in
  // a directory of its own that close() removes again.
  const instance = `t${createHash('sha256').update(dir).digest('hex').slice(0, 10)}`;
  const stateDir = `/run/alacarte-${instance}`;
  const driver = await CrunDriver.create({
    runtimeDir: join(dir, 'sandboxes'),
    imagesDir: join(dir, 'images'),
    instance,
    stateDir,
    warmLayers: 2,
    egress: cfg.egress,
    ...extras.driver,
  });
  const node = await AlacarteNode.create(cfg, {
    driver: extras.wrapDriver ? extras.wrapDriver(driver) : driver,
    images: extras.images ?? ['busybox'],
    logger,
    clock: extras.clock,
    deadlineNoticeOffsetsMs: extras.deadlineNoticeOffsetsMs,
    x402Facilitator: extras.x402Facilitator,
  });
  const { url, mintUrl } = await node.listen();
  return {
    node,
    driver,
    url,
    mintUrl,
    dataDir: dir,
    async close(options = {}) {
      // Leave no sandbox behind, whatever the test did.
      if (!options.keepSandboxes) for (const s of await driver.list()) await driver.stop(s);
      await node.close();
      await driver.close();
      if (options.keepSandboxes) return;
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The real driver with some of its calls replaced, for LeaseNodeExtras.wrapDriver. */
export function aroundDriver(real: CrunDriver, overrides: Partial<ComputeDriver>): ComputeDriver {
  return {
    id: real.id,
    capacity: () => real.capacity(),
    start: (spec, limits, deadline) => real.start(spec, limits, deadline),
    exec: (sandbox, request) => real.exec(sandbox, request),
    spawn: (sandbox, request) => real.spawn(sandbox, request),
    sftp: (sandbox) => real.sftp(sandbox),
    connect: (sandbox, port) => real.connect(sandbox, port),
    attach: (sandbox, size, command) => real.attach(sandbox, size, command),
    setDeadline: (sandbox, deadline) => real.setDeadline(sandbox, deadline),
    isRunning: (sandbox) => real.isRunning(sandbox),
    watch: (onExit) => real.watch(onExit),
    stop: (sandbox) => real.stop(sandbox),
    halt: (sandbox) => real.halt(sandbox),
    list: () => real.list(),
    close: () => real.close(),
    ...overrides,
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

export { freePort } from './ports.js';

/** A node that only runs its mint (no driver, no leases): a source of real foreign ecash. */
export async function startMintNode(): Promise<{ url: string; mintUrl: string; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'alacarte-mint-'));
  const store = testStoreIsPostgres() ? { store: { url: await testDatabase(dir) } } : {};
  const cfg = loadConfig({ flags: { port: 0, dataDir: dir, logLevel: 'silent', ...store } });
  const node = await AlacarteNode.create(cfg);
  const { url, mintUrl } = await node.listen();
  return {
    url,
    mintUrl,
    async close() {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The state at the mint of each proof: 'UNSPENT', 'PENDING' or 'SPENT'. */
export async function statesOf(wallet: Wallet, proofs: readonly Proof[]): Promise<string[]> {
  const states = await wallet.checkProofsStates([...proofs]);
  return states.map((s) => s.state);
}

/** True when every proof is still unspent at its mint: the money was not taken. */
export async function allUnspent(wallet: Wallet, proofs: readonly Proof[]): Promise<boolean> {
  return (await statesOf(wallet, proofs)).every((s) => s === CheckStateEnum.UNSPENT);
}

export async function allSpent(wallet: Wallet, proofs: readonly Proof[]): Promise<boolean> {
  return (await statesOf(wallet, proofs)).every((s) => s === CheckStateEnum.SPENT);
}

/** Many tokens of one amount each, from one funded wallet. */
export async function tokens(
  mintUrl: string,
  count: number,
  amount: number,
): Promise<{ wallet: Wallet; tokens: Array<{ token: string; send: Proof[] }> }> {
  const { wallet, proofs } = await fundedWallet(mintUrl, count * amount);
  let rest = proofs;
  const out: Array<{ token: string; send: Proof[] }> = [];
  for (let i = 0; i < count; i++) {
    const t = await tokenOf(wallet, mintUrl, rest, amount);
    rest = t.keep;
    out.push({ token: t.token, send: t.send });
  }
  return { wallet, tokens: out };
}

export interface OperatorLedger {
  unit: string;
  received: number;
  charged: number;
  refunded: number;
  held: number;
  mint: {
    issued: number;
    redeemed: number;
    outstanding: number;
    lightning_in: number;
    /** x402 payments claimed, in sats: on-chain income backing the own mint's ecash like Lightning. */
    x402_in: number;
    lightning_out: number;
  };
  leases: { running: number; expired: number; stopped: number; failed: number };
  /** Payments handed back whole, over every mint. */
  bounced: number;
  /** Payouts (src/payouts/): charged = paid_out + payout_pending + unpaid. */
  paid_out: number;
  payout_pending: number;
  unpaid: number;
  payouts: Array<{ id: string; source: string; amount: number; fee: number | null; state: string }>;
  by_mint: { own: MintFigures; trusted: Array<{ mint: string } & MintFigures> };
}

export async function ledgerOf(url: string, operatorToken: string): Promise<OperatorLedger> {
  const res = await fetch(`${url}/v1/operator/ledger`, {
    headers: { authorization: `Bearer ${operatorToken}` },
  });
  if (res.status !== 200) throw new Error(`ledger answered ${res.status}`);
  return (await res.json()) as OperatorLedger;
}

/**
 * The money identities of ARCHITECTURE.md: the lease books split what was received, and the mint's
 * outstanding ecash is what came in over Lightning, less what went out, less what the node kept
 * (charged for time used plus held for running leases; refunds and change went back out as ecash)
 * at this mint; each mint's figures balance on their own and add up to the totals.
 */
export function expectBalanced(books: OperatorLedger): string[] {
  const problems: string[] = [];
  if (books.received !== books.charged + books.refunded + books.held)
    problems.push(
      `received ${books.received} != charged ${books.charged} + refunded ${books.refunded} + held ${books.held}`,
    );
  if (books.mint.outstanding !== books.mint.issued - books.mint.redeemed)
    problems.push('mint outstanding != issued - redeemed');
  if (books.charged !== books.paid_out + books.payout_pending + books.unpaid)
    problems.push(`charged ${books.charged} != paid_out + payout_pending + unpaid`);
  for (const m of [books.by_mint.own, ...books.by_mint.trusted]) {
    if (m.received !== m.charged + m.refunded + m.held)
      problems.push(`at a mint: received ${m.received} != charged + refunded + held (${JSON.stringify(m)})`);
    if (m.charged !== m.paid_out + m.payout_pending + m.unpaid)
      problems.push(`at a mint: charged != paid_out + payout_pending + unpaid (${JSON.stringify(m)})`);
  }
  const sum = (k: keyof MintFigures) =>
    [books.by_mint.own, ...books.by_mint.trusted].reduce((n, m) => n + m[k], 0);
  for (const k of ['received', 'charged', 'refunded', 'held', 'bounced', 'paid_out', 'unpaid'] as const) {
    if (sum(k) !== books[k]) problems.push(`${k} ${books[k]} != the sum over mints ${sum(k)}`);
  }
  // Only what the node kept at its own mint is out of that mint's circulation; what it holds at
  // trusted mints is their ecash. What it paid out of its earnings left over Lightning (lightning_out).
  const kept = books.by_mint.own.charged - books.by_mint.own.paid_out + books.by_mint.own.held;
  const backing = books.mint.lightning_in + books.mint.x402_in;
  if (books.mint.outstanding !== backing - books.mint.lightning_out - kept)
    problems.push(
      `mint outstanding ${books.mint.outstanding} != lightning_in ${books.mint.lightning_in} + x402_in ${books.mint.x402_in} - lightning_out ${books.mint.lightning_out} - kept ${kept}`,
    );
  return problems;
}
