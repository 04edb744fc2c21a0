/**
 * Wire types of the Cashu protocol as the mint sees them (NUT-00 and the NUTs that extend it).
 * Amounts of single proofs and outputs are JSON numbers: they are always one of a keyset's
 * denominations (powers of two below 2^53), checked before use. Totals are bigints.
 */

/** A keyset's denomination amounts are powers of two; proofs carry one of them. */
export type Denomination = number;

export interface Proof {
  amount: Denomination;
  /** keyset id */
  id: string;
  secret: string;
  /** unblinded signature, compressed point hex */
  C: string;
  /** NUT-10/11 witness: a JSON string (or, from some wallets, the object itself) */
  witness?: string | { signatures?: string[]; preimage?: string } | undefined;
}

export interface BlindedMessage {
  amount: Denomination;
  id: string;
  B_: string;
}

export interface Dleq {
  e: string;
  s: string;
}

export interface BlindSignature {
  amount: Denomination;
  id: string;
  C_: string;
  dleq: Dleq;
}

export type MintQuoteState = 'UNPAID' | 'PAID' | 'ISSUED';
export type MeltQuoteState = 'UNPAID' | 'PENDING' | 'PAID';
export type ProofState = 'UNSPENT' | 'PENDING' | 'SPENT';

export interface SwapRequest {
  inputs: Proof[];
  outputs: BlindedMessage[];
}

export interface SwapResponse {
  signatures: BlindSignature[];
}

export interface MintQuoteRequest {
  amount: number;
  unit: string;
  description?: string | undefined;
  /** NUT-20: compressed secp256k1 key (hex) whose signature minting this quote will need */
  pubkey?: string | null | undefined;
}

export interface MintQuoteResponse {
  quote: string;
  request: string;
  amount: number;
  unit: string;
  state: MintQuoteState;
  expiry: number | null;
  /** NUT-20: present when the quote is locked to this key */
  pubkey?: string;
}

export interface MintRequest {
  quote: string;
  outputs: BlindedMessage[];
  /** NUT-20: BIP-340 signature (hex) by the quote's key, needed when the quote has one */
  signature?: string | null | undefined;
}

export interface MeltQuoteRequest {
  request: string;
  unit: string;
}

export interface MeltQuoteResponse {
  quote: string;
  request: string;
  amount: number;
  unit: string;
  fee_reserve: number;
  state: MeltQuoteState;
  expiry: number;
  payment_preimage: string | null;
  change?: BlindSignature[];
}

export interface MeltRequest {
  quote: string;
  inputs: Proof[];
  outputs?: BlindedMessage[] | undefined;
}

export interface CheckStateResponse {
  states: Array<{ Y: string; state: ProofState; witness: string | null }>;
}

export interface RestoreResponse {
  outputs: BlindedMessage[];
  signatures: BlindSignature[];
}

export interface KeysetInfo {
  id: string;
  unit: string;
  active: boolean;
  input_fee_ppk: number;
  final_expiry: number | null;
}

export interface KeysetKeys extends KeysetInfo {
  keys: Record<string, string>;
}
