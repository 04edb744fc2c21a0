import type { Amount } from '../core/amount.js';
import type { Bolt11Network } from './bolt11.js';

/**
 * State of an invoice this backend issued. A payment hash it does not know answers 'expired': it
 * can never be paid here.
 */
export type InvoiceState = 'unpaid' | 'paid' | 'expired';

export interface CreatedInvoice {
  bolt11: string;
  /** hex sha256 of the preimage */
  paymentHash: string;
  expiresAt: Date;
}

/** Called with the hex payment hash of an invoice that just settled. */
export type SettlementListener = (paymentHash: string) => void;

/** `preimage` is hex; `feePaid` is in sat. */
export type PaymentOutcome =
  | { state: 'paid'; preimage: string; feePaid: Amount }
  | { state: 'pending' }
  | { state: 'failed'; reason: string };

/**
 * The mint's way to Lightning (ARCHITECTURE.md, port LightningBackend): `fake` (demos and tests),
 * `lnd` (LND REST), `cln` (clnrest) and `nwc` (NIP-47), chosen by `mint.lightning.backend`
 * (create-backend.ts). Every implementation passes the contract suite in
 * test/unit/lightning/lightning-backend.contract.ts.
 */
export interface LightningBackend {
  /** Short name shown in /mint/v1/info and the banner, e.g. 'fake'. */
  readonly id: string;
  /** True when no real money moves (the fake backend); surfaced loudly to users. */
  readonly isTestBackend: boolean;
  /**
   * The chain of the invoices this backend issues and pays (BOLT11 prefix: `bc` mainnet, `tb`
   * testnet, `bcrt` regtest, `sb` simnet), when it knows it: an invoice of another is refused
   * before anything is paid (the mint's melt quote, payouts, payInvoice). Undefined: the node
   * behind the backend refuses such invoices itself.
   */
  readonly network?: Bolt11Network;
  /** An invoice for exactly `amount` (unit sat), `memo` as its description (at most 639 bytes). */
  createInvoice(amount: Amount, memo: string): Promise<CreatedInvoice>;
  invoiceState(paymentHash: string): Promise<InvoiceState>;
  /**
   * Incoming payments as they happen: `listener` gets the payment hash of each invoice of this
   * backend that settles while subscribed (at least once — a listener must be idempotent, and must
   * not throw). Returns the function that unsubscribes. Payments that settle while nobody listens
   * are still seen through `invoiceState`, which the mint asks on every lookup of an unpaid quote.
   */
  onSettlement(listener: SettlementListener): () => void;
  /**
   * Pays a BOLT11 invoice that carries an amount, spending at most maxFee in routing fees. Bad
   * input (undecodable, amountless, expired) is a 'failed' outcome, not an exception. Paying a hash
   * again while an earlier attempt is pending or paid answers that attempt: it never pays twice.
   */
  payInvoice(bolt11: string, maxFee: Amount): Promise<PaymentOutcome>;
  /**
   * The state of an earlier payInvoice, e.g. after a restart while pending. 'failed' only when the
   * backend knows nothing was or will be paid for this hash.
   */
  paymentState(paymentHash: string): Promise<PaymentOutcome>;
}
