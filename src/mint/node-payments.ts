import type { Transact } from '../store/group-commit.js';
import { bytesToHex, hashToCurve, signBlinded } from './crypto/index.js';
import { MintError, MintErrorCode } from './errors.js';
import type { MintEvents } from './events.js';
import { checkInputs, verifyInputs } from './inputs.js';
import type { KeysetRegistry } from './keyset-registry.js';
import {
  insertProofs,
  isUniqueViolation,
  type MintDb,
  type MintTrx,
  proofStates,
} from './store/mint-store.js';
import type { MintTables } from './store/tables.js';
import type { Proof } from './types.js';

const encoder = new TextEncoder();

/** A proof the node hands out itself (change, refund): its secret is derived, never stored. */
export interface UnblindedItem {
  secret: string;
  amount: number;
}

/**
 * The mint as the node's own lease service uses it, in-process: take proofs as payment in the
 * caller's transaction, and issue change and refunds.
 *
 * Issued proofs are signed unblinded — the node is the wallet here, so there is nothing to hide
 * from itself: C = k·Y with Y = hash_to_curve(secret). They are booked as signatures with B_ = Y
 * (a blinding factor of zero), so the mint's books count them as issued like any other ecash and
 * a repeat booking of the same proof is refused by the B_ primary key.
 */
export class NodePayments {
  private readonly transact: Transact<MintTables>;

  constructor(
    private readonly db: MintDb,
    private readonly registry: KeysetRegistry,
    private readonly maxInputs: number,
    private readonly nowSeconds: () => number,
    /** told of the proofs it takes (NUT-17 proof_state) */
    private readonly events: MintEvents,
    /**
     * How `take` runs its transaction: the node's group commit (src/store/group-commit.ts: the
     * payments of one event-loop turn share one COMMIT, each caller answered after it); by
     * default a transaction of its own.
     */
    transact?: Transact<MintTables>,
  ) {
    this.transact = transact ?? ((work) => this.db.transaction().execute(work));
  }

  /** Structural checks only (keysets, denominations, duplicates, count); no money moves. */
  inspect(proofs: readonly Proof[]): { total: bigint; fee: bigint; unit: string; Ys: string[] } {
    const checked = checkInputs(this.registry, proofs, this.maxInputs);
    const Ys = checked.inputs.map((c) => bytesToHex(hashToCurve(encoder.encode(c.proof.secret))));
    return { total: checked.total, fee: checked.fee, unit: checked.unit, Ys };
  }

  /**
   * Verifies `proofs` as a swap would and, in one transaction, marks them SPENT and runs `record`;
   * resolves once that is committed. Throws MintError (11001 when already spent, 11002 when pending, 10001 when invalid).
   */
  async take(proofs: readonly Proof[], record: (trx: MintTrx) => Promise<void>): Promise<void> {
    const checked = checkInputs(this.registry, proofs, this.maxInputs);
    const now = this.nowSeconds();
    const verified = verifyInputs(checked.inputs, { outputs: [], now });
    try {
      await this.transact(async (trx) => {
        await insertProofs(
          trx,
          verified.map((v) => ({
            y: v.Y,
            keyset_id: v.keysetId,
            amount: v.proof.amount,
            witness: null,
            state: 'SPENT' as const,
            melt_quote_id: null,
            created_at: now,
          })),
        );
        await record(trx);
      });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const states = await proofStates(
        this.db,
        verified.map((v) => v.Y),
      );
      if ([...states.values()].some((s) => s.state === 'PENDING')) {
        throw new MintError(MintErrorCode.proofsPending, 'proofs are pending');
      }
      if (states.size > 0) throw new MintError(MintErrorCode.proofsSpent, 'proofs already spent');
      throw err;
    }
    this.events.emit({
      kind: 'proof_state',
      states: verified.map((v) => ({ Y: v.Y, state: 'SPENT' as const, witness: null })),
    });
  }

  /** Signs and books proofs for `items` with the active keyset, inside the caller's transaction. */
  async issue(trx: MintTrx, unit: string, items: readonly UnblindedItem[]): Promise<void> {
    if (items.length === 0) return;
    const keyset = this.registry.active(unit);
    if (keyset === undefined) throw new Error(`no active keyset for ${unit}`);
    const now = this.nowSeconds();
    const rows = items.map((item) => {
      const key = keyset.keys.get(item.amount);
      if (key === undefined) throw new Error(`amount ${item.amount} is not a denomination`);
      const Y = hashToCurve(encoder.encode(item.secret));
      return {
        b_: bytesToHex(Y),
        keyset_id: keyset.id,
        amount: item.amount,
        c_: bytesToHex(signBlinded(key.privateKey, Y)),
        dleq_e: '',
        dleq_s: '',
        melt_quote_id: null,
        created_at: now,
      };
    });
    await trx.insertInto('mint_signatures').values(rows).execute();
  }

  /** The proofs booked earlier by `issue` for these items, in order; throws if one was never booked. */
  async issued(items: readonly UnblindedItem[]): Promise<Proof[]> {
    if (items.length === 0) return [];
    const Ys = items.map((item) => bytesToHex(hashToCurve(encoder.encode(item.secret))));
    const rows = await this.db
      .selectFrom('mint_signatures')
      .select(['b_', 'keyset_id', 'amount', 'c_'])
      .where('b_', 'in', Ys)
      .execute();
    const byY = new Map(rows.map((r) => [r.b_, r]));
    return items.map((item, i) => {
      const row = byY.get(Ys[i]!);
      if (row === undefined || Number(row.amount) !== item.amount) {
        throw new Error('a payout proof was never booked');
      }
      return { id: row.keyset_id, amount: item.amount, secret: item.secret, C: row.c_ };
    });
  }

  /** Ids of every keyset (token decoding needs them to resolve short V4 ids). */
  keysetIds(): string[] {
    return this.registry.all().map((k) => k.id);
  }
}
