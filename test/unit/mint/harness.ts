import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { afterEach } from 'vitest';
import { buildApp } from '../../../src/http/app.js';
import {
  FakeLightningBackend,
  type FakeLightningOptions,
} from '../../../src/lightning/fake/fake-lightning.js';
import { silentLogger } from '../../../src/log.js';
import {
  blindMessage,
  bytesToHex,
  hashToCurve,
  parsePoint,
  unblindSignature,
} from '../../../src/mint/crypto/index.js';
import { mintPlugin } from '../../../src/mint/http/routes.js';
import { Mint, type MintLimits, type MintOptions } from '../../../src/mint/mint.js';
import { asMintDb } from '../../../src/mint/store/mint-store.js';
import type { MintTables } from '../../../src/mint/store/tables.js';
import type { BlindedMessage, BlindSignature, Proof } from '../../../src/mint/types.js';
import { openStore } from '../../../src/store/database.js';
import { testDatabase, testStoreIsPostgres } from '../../helpers/postgres.js';

export interface TestMint {
  mint: Mint;
  db: Kysely<MintTables>;
  lightning: FakeLightningBackend;
  clock: { now: number };
  close(): Promise<void>;
}

/**
 * A mint over a private in-memory store and a fake Lightning backend; in the `postgres` test
 * project (vitest.config.ts) over a database of its own on the run's PostgreSQL server instead
 * (`path` then names the database: the same path, the same store).
 */
export async function createTestMint(
  opts: {
    limits?: Partial<MintLimits>;
    lightning?: FakeLightningOptions;
    keysets?: MintOptions['keysets'];
    path?: string;
    seed?: Uint8Array;
    /** commit swaps through the dialect's own fast path (default) or through Kysely only */
    sqliteFastPath?: boolean;
    /**
     * SQLite in a file of a temporary directory instead of in memory (so that swaps commit in the
     * spend worker's own connection, as the node's do); no effect on PostgreSQL
     */
    file?: boolean;
    /** the curve worker threads' options (default: the node's, cores − 1 threads) */
    curve?: MintOptions['curve'];
    /** the mint's logger (default: none) */
    logger?: MintOptions['logger'];
  } = {},
): Promise<TestMint> {
  const dir =
    opts.file && opts.path === undefined ? mkdtempSync(join(tmpdir(), 'alacarte-mint-')) : undefined;
  const store = await openStore(
    testStoreIsPostgres()
      ? await testDatabase(opts.path)
      : (opts.path ?? (dir === undefined ? ':memory:' : join(dir, 'mint.sqlite'))),
  );
  const db = asMintDb(store.db);
  const clock = { now: Date.now() };
  const lightning = new FakeLightningBackend({ now: () => clock.now, ...opts.lightning });
  const mint = await Mint.create({
    db,
    lightning,
    seed: opts.seed ?? new Uint8Array(randomBytes(32)),
    clock: () => clock.now,
    limits: opts.limits,
    keysets: opts.keysets,
    curve: opts.curve,
    logger: opts.logger,
    ...(opts.sqliteFastPath === false ? {} : { sqlite: store.sqlite, postgres: store.postgres }),
  });
  return {
    mint,
    db,
    lightning,
    clock,
    close: async () => {
      await mint.close();
      await db.destroy();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The node's own app (src/http/app.ts) serving the mint under /mint. */
export async function createTestServer(t: TestMint, bodyLimit?: number): Promise<FastifyInstance> {
  const app = await buildApp({
    logger: silentLogger(),
    bodyLimitBytes: 1024 * 1024,
    plugins: [{ prefix: '/mint', plugin: mintPlugin({ mint: t.mint, bodyLimit }) }],
  });
  await app.ready();
  return app;
}

/** Listens `app` on a free loopback port; answers the mint's base URL, `http://127.0.0.1:<port>/mint`. */
export async function listenMint(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/mint`;
}

/** Wallet side: blinded outputs whose secrets and blinding factors we keep. */
export interface PreparedOutput {
  output: BlindedMessage;
  secret: string;
  r: Uint8Array;
}

export function prepareOutputs(
  keysetId: string,
  amounts: readonly number[],
  secretOf: (i: number) => string = () => bytesToHex(randomBytes(32)),
): PreparedOutput[] {
  return amounts.map((amount, i) => {
    const secret = secretOf(i);
    const r = new Uint8Array(randomBytes(32));
    const B_ = blindMessage(new TextEncoder().encode(secret), r);
    return { output: { amount, id: keysetId, B_: bytesToHex(B_) }, secret, r };
  });
}

export function unblind(
  prepared: readonly PreparedOutput[],
  signatures: readonly BlindSignature[],
  keys: Record<string, string>,
): Proof[] {
  return signatures.map((sig, i) => {
    const p = prepared[i]!;
    const A = parsePoint(keys[String(sig.amount)]!)!;
    const C = unblindSignature(parsePoint(sig.C_)!, p.r, A);
    return { amount: sig.amount, id: sig.id, secret: p.secret, C: bytesToHex(C) };
  });
}

export function yOf(secret: string): string {
  return bytesToHex(hashToCurve(new TextEncoder().encode(secret)));
}

/** Powers of two summing to `amount`. */
export function split(amount: number): number[] {
  const out: number[] = [];
  for (let bit = 0; bit < 53; bit++) {
    const v = 2 ** bit;
    if (Math.floor(amount / v) % 2 === 1) out.push(v);
  }
  return out;
}

/** Mints `amount` sat into proofs, through the in-process API. */
export async function mintProofs(t: TestMint, amounts: number[]): Promise<Proof[]> {
  const total = amounts.reduce((a, b) => a + b, 0);
  const quote = await t.mint.createMintQuote({ amount: total, unit: 'sat' });
  const keyset = t.mint.keys().keysets[0]!;
  const prepared = prepareOutputs(keyset.id, amounts);
  const { signatures } = await t.mint.mint({ quote: quote.quote, outputs: prepared.map((p) => p.output) });
  return unblind(prepared, signatures, keyset.keys);
}

/**
 * createTestMint for a test file whose mints are closed after each test: call once at the top of
 * the file (it registers the afterEach), then open mints with what it returns.
 */
export function mintsClosedAfterEach(): (opts: Parameters<typeof createTestMint>[0]) => Promise<TestMint> {
  const opened: TestMint[] = [];
  afterEach(async () => {
    for (const t of opened.splice(0)) await t.close();
  });
  return async (opts) => {
    const t = await createTestMint(opts);
    opened.push(t);
    return t;
  };
}
