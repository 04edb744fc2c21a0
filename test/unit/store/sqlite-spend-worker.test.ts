import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { isUniqueViolation } from '../../../src/mint/store/mint-store.js';
import { SqliteSpendWriter, sqliteSpendWriter } from '../../../src/mint/store/sqlite-spend.js';
import { SqliteWorkerSpendWriter } from '../../../src/mint/store/sqlite-spend-worker.js';
import type { MintProofsTable, MintSignaturesTable } from '../../../src/mint/store/tables.js';
import { openStore, type Store } from '../../../src/store/database.js';

const hex = () => randomBytes(33).toString('hex');

function proof(y: string): MintProofsTable {
  return {
    y,
    keyset_id: '00aabbccddeeff00',
    amount: 1,
    witness: null,
    state: 'SPENT',
    melt_quote_id: null,
    created_at: 1,
  };
}

function signature(b_: string): MintSignaturesTable {
  return {
    b_,
    keyset_id: '00aabbccddeeff00',
    amount: 1,
    c_: hex(),
    dleq_e: '00'.repeat(32),
    dleq_s: '00'.repeat(32),
    melt_quote_id: null,
    mint_quote_id: null,
    created_at: 1,
  };
}

async function count(store: Store, table: 'mint_proofs' | 'mint_signatures'): Promise<number> {
  const row = await store.db
    .selectFrom(table)
    .select(sql<number>`count(*)`.as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('the SQLite spend worker (a file store)', () => {
  let dir: string;
  let store: Store;
  afterEach(async () => {
    await store?.db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits spends sent together each on its own: a repeated Y fails that spend alone', async () => {
    dir = mkdtempSync(join(tmpdir(), 'alacarte-spend-'));
    store = await openStore(join(dir, 'alacarte.sqlite'));
    const writer = sqliteSpendWriter(store.db, store.sqlite!);
    expect(writer).toBeInstanceOf(SqliteWorkerSpendWriter);
    const y = hex();
    const outcomes = await Promise.allSettled([
      writer.commit([proof(y), proof(hex())], [signature(hex())]),
      writer.commit([proof(hex())], [signature(hex())]),
      // The same Y again: refused, with its other proof and its signature rolled back.
      writer.commit([proof(hex()), proof(y)], [signature(hex())]),
      writer.commit([proof(hex())], [signature(hex())]),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(isUniqueViolation((outcomes[2] as PromiseRejectedResult).reason)).toBe(true);
    // Seen at once through the node's own connection.
    expect(await count(store, 'mint_proofs')).toBe(4);
    expect(await count(store, 'mint_signatures')).toBe(3);
    await writer.close?.();
    await expect(writer.commit([proof(hex())], [])).rejects.toThrow(/closing/);
  });

  it('commits on the node connection once its worker is gone', async () => {
    dir = mkdtempSync(join(tmpdir(), 'alacarte-spend-'));
    store = await openStore(join(dir, 'alacarte.sqlite'));
    // A worker that cannot open its file dies at once.
    const writer = new SqliteWorkerSpendWriter(
      store.db,
      join(dir, 'missing.sqlite'),
      new SqliteSpendWriter(store.sqlite!),
    );
    const first = await Promise.allSettled([writer.commit([proof(hex())], [signature(hex())])]);
    // The batch out when it died has no answer to give: refused, and nothing of it stored.
    expect(first[0]!.status).toBe('rejected');
    expect(await count(store, 'mint_proofs')).toBe(0);
    const y = hex();
    await writer.commit([proof(y)], [signature(hex())]);
    await expect(writer.commit([proof(y)], [])).rejects.toSatisfy(isUniqueViolation);
    expect(await count(store, 'mint_proofs')).toBe(1);
  });

  it('keeps an in-memory store on its own connection', async () => {
    dir = mkdtempSync(join(tmpdir(), 'alacarte-spend-'));
    store = await openStore(':memory:');
    expect(sqliteSpendWriter(store.db, store.sqlite!)).toBeInstanceOf(SqliteSpendWriter);
  });
});

describe('the SQLite spend worker in a process with nothing else to do', () => {
  it('keeps the process alive until close() has ended its worker, so what comes after close() runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-spend-alone-'));
    // The two modules as JavaScript, where better-sqlite3 resolves from (the worker resolves it
    // from its module's place): under node_modules/.cache, as other tools keep theirs.
    const cache = join(import.meta.dirname, '..', '..', '..', 'node_modules', '.cache');
    mkdirSync(cache, { recursive: true });
    const code = mkdtempSync(join(cache, 'alacarte-spend-'));
    try {
      const file = join(dir, 'alacarte.sqlite');
      const store = await openStore(file);
      await store.db.destroy();
      writeFileSync(join(code, 'package.json'), '{"type":"module"}');
      for (const name of ['sqlite-spend-worker', 'sqlite-spend-rows']) {
        const source = readFileSync(new URL(`../../../src/mint/store/${name}.ts`, import.meta.url), 'utf8');
        writeFileSync(join(code, `${name}.js`), transformSync(source, { loader: 'ts', format: 'esm' }).code);
      }
      const script = `
        import { SqliteWorkerSpendWriter } from ${JSON.stringify(join(code, 'sqlite-spend-worker.js'))};
        const holder = { connection: () => ({ execute: (callback) => callback(undefined) }) };
        const fallback = { commit: () => Promise.reject(new Error('the fallback was used')) };
        const writer = new SqliteWorkerSpendWriter(holder, ${JSON.stringify(file)}, fallback);
        await writer.commit(${JSON.stringify([proof(hex())])}, ${JSON.stringify([signature(hex())])});
        console.log('committed');
        await writer.close();
        console.log('closed');
      `;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      // Before: the worker, unreferenced while idle, let the process end inside close() (exit 13:
      // a top-level await never settled; in \`alacarte serve\`, exit 0 with the driver never closed).
      expect(r.stdout, r.stderr).toBe('committed\nclosed\n');
      expect(r.status).toBe(0);
      const after = await openStore(file);
      try {
        expect(await count(after, 'mint_proofs')).toBe(1);
      } finally {
        await after.db.destroy();
      }
    } finally {
      rmSync(code, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
