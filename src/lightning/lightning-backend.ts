import type { Amount } from '../core/amount.js';

/** State of an invoice this backend issued. */
export type InvoiceState = 'unpaid' | 'paid' | 'expired';

export interface CreatedInvoice {
  bolt11: string;
  /** hex sha256 of the preimage */
  paymentHash: string;
  expiresAt: Date;
}

export type PaymentOutcome =
  | { state: 'paid'; preimage: string; feePaid: Amount }
  | { state: 'pending' }
  | { state: 'failed'; reason: string };

/**
 * The mint's way to Lightning (ARCHITECTURE.md, port LightningBackend). `fake` for demos and
 * tests; LND, CLN and NWC later. Every implementation passes test/unit/lightning/contract.ts.
 */
export interface LightningBackend {
  /** Short name shown in /mint/v1/info and the banner, e.g. 'fake'. */
  readonly id: string;
  /** True when no real money moves (the fake backend); surfaced loudly to users. */
  readonly isTestBackend: boolean;
  createInvoice(amount: Amount, memo: string): Promise<CreatedInvoice>;
  invoiceState(paymentHash: string): Promise<InvoiceState>;
  /** Pays an outside invoice, spending at most maxFee in routing fees. */
  payInvoice(bolt11: string, maxFee: Amount): Promise<PaymentOutcome>;
  /** The state of an earlier payInvoice, e.g. after a restart while pending. */
  paymentState(paymentHash: string): Promise<PaymentOutcome>;
}
