import type { OfferJson } from '../core/offers.js';

/** Shapes of the alacarte HTTP API, version 1 (API.md), as the SDK returns them. */
export interface Offer extends OfferJson {
  available: number;
}

export interface OffersResponse {
  offers: Offer[];
  images: string[];
  payment: { cashu: { mints: string[]; unit: string } };
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

export interface ExecResult {
  exit_code: number;
  stdout: string;
  stderr: string;
  truncated: boolean;
}

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
