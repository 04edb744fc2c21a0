import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
