import type { Generated } from 'kysely';

/**
 * Lease service tables. Times are Unix milliseconds (bigint-safe in both dialects); amounts are
 * whole units. No column holds a token, a credential in clear or anything about the client.
 */
export interface LeaseTables {
  /** What every node on this store must share (migration 0016): `node-key` → a value derived from it. */
  node_identity: {
    name: string;
    value: string;
  };
  leases: {
    id: string;
    offer_id: string;
    /** The offer as sold (prices may change later; this lease keeps its own). */
    offer_json: string;
    image: string;
    state: 'pending' | 'running' | 'expired' | 'stopped' | 'failed';
    created_at: number;
    started_at: number | null;
    expires_at: number | null;
    ended_at: number | null;
    /** Net paid for time: what the first payment and every extension kept (their `kept`). */
    held: number;
    refunded: number;
    unit: string;
    credential_hash: string;
    fail_reason: string | null;
    /** Sandbox port → host URL, once started. */
    ports_json: string;
    /** The request's SSH public keys (OpenSSH lines), a JSON array; '[]' when none. */
    ssh_keys_json: Generated<string>;
    /** The compute target holding the sandbox (compute-target.ts); '' for leases from before. */
    target: Generated<string>;
    /** The replica that started the sandbox; '' for leases from before. */
    replica: Generated<string>;
  };
  payments: {
    /** Idempotency key of the payment itself (Cashu: sha256 over the sorted proof Y points). */
    key: string;
    lease_id: string;
    purpose: 'create' | 'extend';
    rail: string;
    mint_url: string;
    /** What the payment was worth. */
    amount: number;
    /** What the node kept for time: the price, less any input fee it bore (core/input-fees.ts). */
    kept: number;
    /**
     * What came back at once as change: amount − kept − the input fees the overpayment covers
     * (core/input-fees.ts); the node bears the rest of the fees.
     */
    change: number;
    fee: number;
    seconds: number;
    /** sha256 of the client's Idempotency-Key header, if it sent one. */
    idempotency_hash: string | null;
    /**
     * Keyed digest (node secret) of the request this payment paid for: a replay must carry the same
     * request. null on rows written before it existed.
     */
    request_hash: string | null;
    created_at: number;
    seq: Generated<number>;
  };
}
