import type pg from 'pg';
import { connectTo, isStoreUnavailable } from '../../store/database.js';
import type { MintProofsTable, MintSignaturesTable } from './tables.js';

/**
 * One swap's commit: the inputs' Ys and the outputs' signatures stored together or not at all.
 * Rejects with the database's error (a unique violation when a Y or a B_ is there already).
 */
export interface SpendWriter {
  commit(proofs: readonly MintProofsTable[], signatures: readonly MintSignaturesTable[]): Promise<void>;
  /** Ends what the writer runs of its own (a worker thread), after the commits under way. */
  close?(): Promise<void>;
}

// One statement is one transaction in PostgreSQL: the data-modifying CTE and the outer insert
// commit together, and a Y already spent (primary key) fails the whole of it — the same guarantee
// as the Kysely transaction, in one round trip instead of four (BEGIN, two inserts, COMMIT).
// Columns travel as arrays (unnest), so the statement's text and plan stay the same whatever the
// number of proofs.
const SPEND = `
with spent as (
  insert into mint_proofs (y, keyset_id, amount, witness, state, melt_quote_id, created_at)
  select * from unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[])
)
insert into mint_signatures (b_, keyset_id, amount, c_, dleq_e, dleq_s, melt_quote_id, created_at)
select * from unnest($8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[])`;

/**
 * The swap's commit on PostgreSQL without the query builder: one prepared statement on a pooled
 * connection. Concurrent swaps spending the same proof, from this process or another replica on
 * the same database, serialise on the primary key of `mint_proofs`: one commits, the other gets a
 * unique violation (23505), as on SQLite.
 */
export class PostgresSpendWriter implements SpendWriter {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * Rejects with StoreUnavailableError when no connection can be had (the server is down): the
   * swap is answered 503, nothing spent.
   */
  async commit(
    proofs: readonly MintProofsTable[],
    signatures: readonly MintSignaturesTable[],
  ): Promise<void> {
    const client = await connectTo(this.pool);
    let lost = false;
    try {
      await this.spend(client, proofs, signatures);
    } catch (err) {
      // A connection the server dropped is not given back to the pool for the next swap.
      lost = isStoreUnavailable(err);
      throw err;
    } finally {
      client.release(lost);
    }
  }

  private async spend(
    client: pg.PoolClient,
    proofs: readonly MintProofsTable[],
    signatures: readonly MintSignaturesTable[],
  ): Promise<void> {
    await client.query({
      name: 'alacarte_mint_spend',
      text: SPEND,
      values: [
        proofs.map((p) => p.y),
        proofs.map((p) => p.keyset_id),
        proofs.map((p) => p.amount),
        proofs.map((p) => p.witness),
        proofs.map((p) => p.state),
        proofs.map((p) => p.melt_quote_id),
        proofs.map((p) => p.created_at),
        signatures.map((s) => s.b_),
        signatures.map((s) => s.keyset_id),
        signatures.map((s) => s.amount),
        signatures.map((s) => s.c_),
        signatures.map((s) => s.dleq_e),
        signatures.map((s) => s.dleq_s),
        signatures.map((s) => s.melt_quote_id),
        signatures.map((s) => s.created_at),
      ],
    });
  }
}
