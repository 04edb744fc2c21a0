import type { Transact } from '../store/group-commit.js';
import { bytesToHex, hashToCurve, signBlinded } from './crypto/index.js';
import { type CurvePool, MAX_WIRE_SECRET_LENGTH } from './curve-pool.js';
import { MintError, MintErrorCode } from './errors.js';
import type { MintEvents } from './events.js';
import { checkInputs } from './inputs.js';
import type { KeysetRegistry } from './keyset-registry.js';
import {
  insertProofs,
  isUniqueViolation,
  type MintDb,
  type MintTrx,
  proofStates,
} from './store/mint-store.js';
import type { MintTables } from './store/tables.js';
import { verifyAndSign } from './swap-curve.js';
import type { Proof } from './types.js';

const encoder = new TextEncoder();

/**
 * Most proofs signed ahead (presign) and kept for issue() and issued(): a stop's refund is a
 * dozen, and each entry is read within milliseconds of being made, so this only bounds memory.
 */
const MAX_SIGNED_AHEAD = 4096;

/** A proof signed ahead of its booking: Y = hash_to_curve(secret) and C = k·Y, hex. */
interface SignedAhead {
  keysetId: string;
  amount: number;
  y: string;
  c: string;
}

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
  /** secret → what presign() or issue() computed for it, oldest first (MAX_SIGNED_AHEAD at most). */
  private readonly signedAhead = new Map<string, SignedAhead>();

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
    /**
     * The mint's curve threads (curve-pool.ts): when given, verifying a payment's proofs and
     * signing change and refunds ahead (presign) run there, off the event loop; without it, here.
     */
    private readonly curve?: CurvePool,
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
   * Verifies `proofs` as a swap would (on the curve threads when there are) and, in one
   * transaction, marks them SPENT and runs `record`; resolves once that is committed. Throws
   * MintError (11001 when already spent, 11002 when pending, 10001 when invalid; 503 when the
   * curve threads have more work waiting than they take, before anything is taken).
   */
  async take(proofs: readonly Proof[], record: (trx: MintTrx) => Promise<void>): Promise<void> {
    const checked = checkInputs(this.registry, proofs, this.maxInputs);
    const now = this.nowSeconds();
    const { verified } = await verifyAndSign(this.curve, checked.inputs, [], { outputs: [], now });
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

  /**
   * Signs proofs for `items` with the active keyset ahead of issue() (on the curve threads when
   * there are), so that issue(), inside the caller's store transaction, finds them signed and does
   * no curve work there. Books nothing: what it signed and nobody issues is forgotten. Never
   * refused for a busy pool (what it signs is owed already); an item issue() does not find signed
   * (another amount, another keyset meanwhile) is signed there as before.
   */
  async presign(unit: string, items: readonly UnblindedItem[]): Promise<void> {
    const pool = this.curve;
    const keyset = this.registry.active(unit);
    if (pool === undefined || keyset === undefined) return;
    const todo = items.filter((item) => {
      const known = this.signedAhead.get(item.secret);
      return (
        item.secret.length <= MAX_WIRE_SECRET_LENGTH &&
        keyset.keys.has(item.amount) &&
        (known === undefined || known.keysetId !== keyset.id || known.amount !== item.amount)
      );
    });
    if (todo.length === 0) return;
    const outcome = await pool.run(
      {
        inputs: [],
        outputs: [],
        issues: todo.map((item) => ({
          key: pool.indexOf(keyset.keys.get(item.amount)!),
          secret: item.secret,
        })),
      },
      { admitAlways: true },
    );
    if (!outcome.ok) return;
    todo.forEach((item, i) => {
      const { Y, C } = outcome.issued[i]!;
      this.remember(item.secret, {
        keysetId: keyset.id,
        amount: item.amount,
        y: bytesToHex(Y),
        c: bytesToHex(C),
      });
    });
  }

  /**
   * Signs and books proofs for `items` with the active keyset, inside the caller's transaction;
   * what presign() signed for the same keyset and amount is taken as it is (the same bytes: the
   * signature is deterministic).
   */
  async issue(trx: MintTrx, unit: string, items: readonly UnblindedItem[]): Promise<void> {
    if (items.length === 0) return;
    const keyset = this.registry.active(unit);
    if (keyset === undefined) throw new Error(`no active keyset for ${unit}`);
    const now = this.nowSeconds();
    const rows = items.map((item) => {
      const key = keyset.keys.get(item.amount);
      if (key === undefined) throw new Error(`amount ${item.amount} is not a denomination`);
      let signed = this.signedAhead.get(item.secret);
      if (signed === undefined || signed.keysetId !== keyset.id || signed.amount !== item.amount) {
        const Y = hashToCurve(encoder.encode(item.secret));
        signed = {
          keysetId: keyset.id,
          amount: item.amount,
          y: bytesToHex(Y),
          c: bytesToHex(signBlinded(key.privateKey, Y)),
        };
        // issued() shows these moments later (the stop's answer): it finds Y here.
        this.remember(item.secret, signed);
      }
      return {
        b_: signed.y,
        keyset_id: keyset.id,
        amount: item.amount,
        c_: signed.c,
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
    // Y depends on the secret alone: one signed moments ago (the stop that booked it) is known.
    const Ys = items.map(
      (item) => this.signedAhead.get(item.secret)?.y ?? bytesToHex(hashToCurve(encoder.encode(item.secret))),
    );
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

  private remember(secret: string, signed: SignedAhead): void {
    this.signedAhead.delete(secret);
    this.signedAhead.set(secret, signed);
    if (this.signedAhead.size > MAX_SIGNED_AHEAD) {
      const oldest = this.signedAhead.keys().next().value;
      if (oldest !== undefined) this.signedAhead.delete(oldest);
    }
  }

  /** Ids of every keyset (token decoding needs them to resolve short V4 ids). */
  keysetIds(): string[] {
    return this.registry.all().map((k) => k.id);
  }
}
