import type { OfferJson } from '../core/offers.js';

/** Shapes of the alacarte HTTP API, version 1 (API.md), as the SDK returns them. */
export interface Offer extends OfferJson {
  available: number;
}

export interface OffersResponse {
  offers: Offer[];
  images: string[];
  /** One entry per image in `images` (API.md, second wave); absent from older nodes. */
  image_details?: { name: string; description: string; size_mib: number }[];
  /**
   * One key per accepted rail; `l402` is there when Lightning (L402) pays too, `x402` when EVM
   * stablecoins (x402, scheme exact) do.
   */
  payment: {
    cashu: { mints: string[]; unit: string };
    l402?: { unit: string };
    x402?: {
      scheme: 'exact';
      network: string;
      asset: string;
      asset_name: string;
      asset_version: string;
      pay_to: string;
      /** A price of p sat is ceil(p × atomic_units / sats) of the asset's smallest units. */
      rate: { atomic_units: string; sats: number };
      max_timeout_seconds: number;
    };
  };
}

export interface Quote {
  offer: string;
  seconds: number;
  amount: number;
  unit: string;
}

export type LeaseState = 'pending' | 'running' | 'expired' | 'stopped' | 'failed';

export interface Lease {
  id: string;
  state: LeaseState;
  offer: string;
  image: string;
  created_at: string;
  expires_at: string;
  paid: number;
  unit: string;
  ports: Record<string, string>;
  remaining_seconds?: number;
  /** Where to log in over SSH when the node serves it: `ssh -p PORT USER@HOST`. */
  ssh?: { host: string; port: number; user: string };
  [extra: string]: unknown;
}

/** The answer to a paid creation: the lease plus its bearer credential. */
export interface RentedLease extends Lease {
  token: string;
  change: string | null;
}

export interface StoppedLease extends Lease {
  /** The first token of `refunds`. */
  refund: string | null;
  /** The total paid back, over every mint. */
  refunded: number;
  /** One token per mint the lease was paid at, in the order the refund drew on them. */
  refunds?: MintRefund[];
}

/** The part of a refund one mint pays back. */
export interface MintRefund {
  mint: string;
  token: string | null;
  amount: number;
}

/** How an exec's stdin is sent and its stdout/stderr answered (API.md, exec). */
export type ExecEncoding = 'utf8' | 'base64';

export interface ExecResult {
  exit_code: number;
  /** Text, or base64 of the bytes when the exec asked for `encoding: 'base64'`. */
  stdout: string;
  stderr: string;
  /** stdout or stderr went beyond the node's cap (1 MiB each by default) and was cut there. */
  truncated: boolean;
  /** Present when the output is base64. */
  encoding?: 'base64';
}

/** An exec's answer as bytes, unchanged (Alacarte.execBytes). */
export interface ExecBytesResult {
  exit_code: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  truncated: boolean;
}

/**
 * The answer to a background exec (`"background": true`): `202 {"started": true, "pid": n}`, pid as
 * the sandbox numbers it; or, when the command could not be started (not found), the finished
 * launcher's result with `started: false` (exit code 127 and the reason in stderr).
 */
export type BackgroundExec = { started: true; pid: number } | ({ started: false } & ExecResult);

export interface RentRequest {
  offer: string;
  seconds: number;
  image: string;
  command?: string[];
  env?: Record<string, string>;
  ports?: number[];
  /** OpenSSH public key lines (`ssh-ed25519 AAAA… comment`) that may log in over SSH; at most 8. */
  sshKeys?: string[];
  /** The most the wallet may pay; a 402 asking more is refused before anything is paid. */
  maxAmount?: number;
}
