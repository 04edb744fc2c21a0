import type { Kysely } from 'kysely';
import { bytesToHex, deriveKeyset, type Keyset, keysToJson } from './crypto/index.js';
import { secp } from './crypto/native.js';
import { MintError, MintErrorCode } from './errors.js';
import { isUniqueViolation } from './store/mint-store.js';
import type { MintTables } from './store/tables.js';
import type { KeysetInfo, KeysetKeys } from './types.js';

/** One denomination's key in the form the hot path wants it. */
export interface AmountKey {
  privateKey: Uint8Array;
  /** compressed, as published */
  publicKeyHex: string;
  /** uncompressed A, as NUT-12 hashes it (saves a conversion per signature) */
  publicKeyFull: Uint8Array;
}

export interface LoadedKeyset {
  id: string;
  unit: string;
  active: boolean;
  inputFeePpk: number;
  index: number;
  maxOrder: number;
  /** denomination (a power of two below 2^53) → key */
  keys: Map<number, AmountKey>;
  info: KeysetInfo;
  published: KeysetKeys;
}

export interface KeysetSettings {
  /** denominations 2^0 .. 2^(maxOrder-1); at most 53 so every amount is an exact JSON number */
  maxOrder: number;
  inputFeePpk: number;
}

/**
 * The mint's keysets: rows in `mint_keysets` say which exist (unit, rotation index, fee, active);
 * keys are re-derived from the seed at load and must reproduce the stored id, so a wrong seed file
 * stops the mint rather than signing with keys nobody can redeem.
 */
export class KeysetRegistry {
  private byId = new Map<string, LoadedKeyset>();
  private activeByUnit = new Map<string, LoadedKeyset>();

  constructor(
    private readonly db: Kysely<MintTables>,
    private readonly seed: Uint8Array,
    private readonly now: () => number,
  ) {}

  /** Loads every keyset; creates the first keyset of each unit that has none active. */
  async load(units: readonly string[], settings: KeysetSettings): Promise<void> {
    await this.reload();
    for (const unit of units) {
      if (this.activeByUnit.has(unit)) continue;
      try {
        await this.rotate(unit, settings);
      } catch (err) {
        // Another replica on the same store created it first (same seed, same index, same id).
        if (!isUniqueViolation(err)) throw err;
        await this.reload();
        if (!this.activeByUnit.has(unit)) throw err;
      }
    }
  }

  async reload(): Promise<void> {
    const rows = await this.db.selectFrom('mint_keysets').selectAll().orderBy('derivation_index').execute();
    const byId = new Map<string, LoadedKeyset>();
    const activeByUnit = new Map<string, LoadedKeyset>();
    for (const row of rows) {
      const known = this.byId.get(row.id);
      const loaded =
        known !== undefined && known.active === (row.active === 1)
          ? known
          : this.derive(row.unit, row.derivation_index, row.max_order, row.input_fee_ppk, row.active === 1);
      if (loaded.id !== row.id) {
        throw new Error(
          `mint keyset ${row.id} does not derive from this seed (got ${loaded.id}); wrong seed file? A replica needs the first replica's mint.seed and node.key, copied as files from its data directory (README, "Several replicas behind a load balancer")`,
        );
      }
      byId.set(loaded.id, loaded);
      if (loaded.active) activeByUnit.set(loaded.unit, loaded);
    }
    this.byId = byId;
    this.activeByUnit = activeByUnit;
  }

  /**
   * Starts a new active keyset for `unit` (next rotation index) and deactivates the previous
   * one, which keeps redeeming. Returns the new keyset's id.
   */
  async rotate(unit: string, settings: KeysetSettings): Promise<string> {
    if (!Number.isInteger(settings.maxOrder) || settings.maxOrder < 1 || settings.maxOrder > 53) {
      throw new RangeError('keyset maxOrder must be 1..53');
    }
    const created = await this.db.transaction().execute(async (trx) => {
      const last = await trx
        .selectFrom('mint_keysets')
        .select((eb) => eb.fn.max('derivation_index').as('max'))
        .where('unit', '=', unit)
        .executeTakeFirst();
      const index = last?.max === null || last?.max === undefined ? 0 : Number(last.max) + 1;
      const keyset = this.derive(unit, index, settings.maxOrder, settings.inputFeePpk, true);
      await trx.updateTable('mint_keysets').set({ active: 0 }).where('unit', '=', unit).execute();
      await trx
        .insertInto('mint_keysets')
        .values({
          id: keyset.id,
          unit,
          active: 1,
          input_fee_ppk: settings.inputFeePpk,
          derivation_index: index,
          max_order: settings.maxOrder,
          created_at: this.now(),
        })
        .execute();
      return keyset;
    });
    await this.reload();
    return created.id;
  }

  get(id: string): LoadedKeyset | undefined {
    return this.byId.get(id);
  }

  /** The keyset of an input: known, any state. */
  forInput(id: string): LoadedKeyset {
    const keyset = this.byId.get(id);
    if (keyset === undefined) throw new MintError(MintErrorCode.keysetUnknown, `keyset ${id} is not known`);
    return keyset;
  }

  /** The keyset of an output: known and active. */
  forOutput(id: string): LoadedKeyset {
    const keyset = this.forInput(id);
    if (!keyset.active) throw new MintError(MintErrorCode.keysetInactive, `keyset ${id} is inactive`);
    return keyset;
  }

  active(unit: string): LoadedKeyset | undefined {
    return this.activeByUnit.get(unit);
  }

  all(): LoadedKeyset[] {
    return [...this.byId.values()];
  }

  private derive(
    unit: string,
    index: number,
    maxOrder: number,
    inputFeePpk: number,
    active: boolean,
  ): LoadedKeyset {
    const keyset: Keyset = deriveKeyset({ seed: this.seed, unit, index, maxOrder, inputFeePpk, active });
    const keys = new Map<number, AmountKey>();
    for (const [amount, pair] of keyset.keys) {
      keys.set(Number(amount), {
        privateKey: pair.privateKey,
        publicKeyHex: bytesToHex(pair.publicKey),
        publicKeyFull: secp.publicKeyConvert(pair.publicKey, false),
      });
    }
    const info: KeysetInfo = {
      id: keyset.id,
      unit,
      active,
      input_fee_ppk: inputFeePpk,
      final_expiry: null,
    };
    return {
      id: keyset.id,
      unit,
      active,
      inputFeePpk,
      index,
      maxOrder,
      keys,
      info,
      published: { ...info, keys: keysToJson(keyset.keys) },
    };
  }
}
