import { Amount } from '../core/amount.js';
import type { LightningBackend } from '../lightning/lightning-backend.js';
import type { Logger } from '../log.js';
import type { PayoutOutcome } from './payout-outcome.js';

/**
 * Pays a payout of the own mint's takings with the mint's Lightning backend (port
 * LightningBackend: only `payInvoice` and `paymentState`). The backend refuses to pay a payment
 * hash twice, and an error or time-out leaves the payout pending: `state` asks again later.
 */
export class OwnMintPayer {
  constructor(
    private readonly lightning: LightningBackend,
    private readonly unit: string,
    private readonly log?: Logger,
  ) {}

  /** The chain of the invoices the backend pays, when it knows it (LightningBackend.network). */
  get network(): LightningBackend['network'] {
    return this.lightning.network;
  }

  /** Pays `request` spending at most `maxFee` in routing fees. */
  async pay(request: string, paymentHash: string, maxFee: bigint): Promise<PayoutOutcome> {
    try {
      return outcomeOf(await this.lightning.payInvoice(request, Amount.of(maxFee, this.unit)));
    } catch (err) {
      this.log?.warn({ err }, 'payout: payInvoice threw; asking for the payment state');
      return this.state(paymentHash);
    }
  }

  /** The state of an earlier `pay` of this payment hash (hex). */
  async state(paymentHash: string): Promise<PayoutOutcome> {
    try {
      return outcomeOf(await this.lightning.paymentState(paymentHash));
    } catch (err) {
      this.log?.warn({ err }, 'payout: paymentState threw; the payout stays pending');
      return { state: 'pending' };
    }
  }
}

function outcomeOf(outcome: Awaited<ReturnType<LightningBackend['paymentState']>>): PayoutOutcome {
  if (outcome.state === 'paid') return { state: 'paid', fee: outcome.feePaid.value };
  return outcome;
}
