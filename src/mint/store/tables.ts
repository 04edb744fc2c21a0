/**
 * The mint's tables. Amounts are integers (denominations < 2^53, sums of a bounded number of them),
 * times are Unix seconds. Text keys are lowercase hex.
 */
export interface MintKeysetsTable {
  id: string;
  unit: string;
  /** 1 = signs new outputs; 0 = only redeems */
  active: number;
  input_fee_ppk: number;
  /** index in the seed's derivation path: keys are re-derived, never stored */
  derivation_index: number;
  /** denominations 2^0 .. 2^(max_order-1) */
  max_order: number;
  created_at: number;
}

/**
 * Every proof ever seen as input. Y is the primary key: one spend per proof, across requests.
 * Neither the secret nor C is kept: a stolen store must not yield a spendable proof.
 */
export interface MintProofsTable {
  y: string;
  keyset_id: string;
  amount: number;
  witness: string | null;
  state: 'PENDING' | 'SPENT';
  /** the melt that holds it PENDING (or spent it) */
  melt_quote_id: string | null;
  created_at: number;
}

/** Every blind signature ever issued, keyed by B_ (NUT-09 restore; B_ is signed once). */
export interface MintSignaturesTable {
  b_: string;
  keyset_id: string;
  amount: number;
  c_: string;
  dleq_e: string;
  dleq_s: string;
  /** NUT-08 change of this melt quote */
  melt_quote_id: string | null;
  /** NUT-04: issued for this mint quote (a replay must name the same quote); migration 0006 */
  mint_quote_id: string | null;
  created_at: number;
}

export interface MintMintQuotesTable {
  id: string;
  method: string;
  unit: string;
  amount: number;
  request: string;
  payment_hash: string;
  state: 'UNPAID' | 'PAID' | 'ISSUED';
  expiry: number;
  created_at: number;
  paid_at: number | null;
  issued_at: number | null;
  /** set when a melt of this mint settled the invoice without Lightning */
  paid_by_melt_quote_id: string | null;
  /** NUT-20: the key minting this quote needs a signature of (compressed, hex); migration 0008 */
  pubkey: string | null;
}

export interface MintMeltQuotesTable {
  id: string;
  method: string;
  unit: string;
  request: string;
  payment_hash: string;
  amount: number;
  fee_reserve: number;
  state: 'UNPAID' | 'PENDING' | 'PAID';
  expiry: number;
  created_at: number;
  paid_at: number | null;
  payment_preimage: string | null;
  fee_paid: number | null;
  /** the mint quote of this node that the invoice belongs to: settles internally */
  internal_mint_quote_id: string | null;
  /** while PENDING: what settlement needs to return change (inputs total minus input fee, blank outputs) */
  pending_inputs_net: number | null;
  pending_outputs: string | null;
}

export interface MintTables {
  mint_keysets: MintKeysetsTable;
  mint_proofs: MintProofsTable;
  mint_signatures: MintSignaturesTable;
  mint_mint_quotes: MintMintQuotesTable;
  mint_melt_quotes: MintMeltQuotesTable;
}
