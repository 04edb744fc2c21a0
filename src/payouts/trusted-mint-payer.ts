import {
  Amount as CashuAmount,
  type Proof as CashuProof,
  type MeltQuoteBolt11Response,
  Wallet,
} from '@cashu/cashu-ts';
import { AlacarteError } from '../core/errors.js';
import type { NodeSecret } from '../leases/node-secret.js';
import type { Logger } from '../log.js';
import type { Proof } from '../mint/types.js';
import { MintUnavailable } from '../rails/cashu/mint-client.js';
import type { TrustedMints } from '../rails/cashu/trusted-mints.js';
import type { PayoutOutcome } from './payout-outcome.js';

/** NUT-08 blank outputs of one melt never exceed this (one per bit of a 64-bit overpayment). */
const MAX_CHANGE_OUTPUTS = 64;

/** A melt quote at a trusted mint and the proofs that will pay it. */
export interface PreparedMelt extends ChangeSeen {
  quote: MeltQuoteBolt11Response;
  amount: bigint;
  feeReserve: bigint;
  proofs: Proof[];
  /** Value of `proofs`. */
  inputs: bigint;
}

/** What `prepare` learnt of earlier payouts' change, whether or not the held proofs cover the invoice. */
export interface ChangeSeen {
  /** Of the earlier payouts asked about, those whose change is all spent (or none): never to be asked again. */
  changeSpent: string[];
}

/**
 * Pays a payout out of the ecash the node holds at one trusted mint: a NUT-05 melt quote for the
 * invoice, then a melt of held proofs (TrustedMints.held, plus the change of earlier payouts),
 * both with cashu-ts. The melt's change (NUT-08) goes to outputs derived from the node secret and
 * the payout id (NUT-13 with a per-payout seed), so it is found again by restore after a crash:
 * the store keeps no proof.
 */
export class TrustedMintPayer {
  constructor(
    readonly url: string,
    private readonly options: {
      unit: string;
      secret: NodeSecret;
      trusted: TrustedMints;
      log?: Logger;
    },
  ) {}

  /**
   * A melt quote for `request` and held proofs covering it with the input fee, or what they fall
   * `short` by. `earlierPayouts`: the paid payouts here whose change may still be unspent (their
   * change is restored and checked, one mint round trip each); the answer names those found spent.
   */
  async prepare(
    request: string,
    earlierPayouts: readonly string[],
  ): Promise<PreparedMelt | ({ short: bigint } & ChangeSeen)> {
    const wallet = await this.wallet();
    let quote: MeltQuoteBolt11Response;
    try {
      quote = await wallet.createMeltQuoteBolt11(request);
    } catch (err) {
      throw refused(this.url, 'refused a melt quote', err);
    }
    const amount = quote.amount.toBigInt();
    const feeReserve = quote.fee_reserve.toBigInt();
    const { proofs: held, changeSpent } = await this.held(earlierPayouts);
    const proofs: Proof[] = [];
    let inputs = 0n;
    for (const p of held) {
      const fee = wallet.getFeesForProofs(proofs).toBigInt();
      if (inputs - fee >= amount + feeReserve) break;
      proofs.push(p);
      inputs += BigInt(p.amount);
    }
    const fee = wallet.getFeesForProofs(proofs).toBigInt();
    if (inputs - fee < amount + feeReserve) return { short: amount + feeReserve + fee - inputs, changeSpent };
    return { quote, amount, feeReserve, proofs, inputs, changeSpent };
  }

  /** Melts the prepared proofs for payout `payoutId` (recorded pending before this is called). */
  async melt(payoutId: string, prepared: PreparedMelt): Promise<PayoutOutcome> {
    try {
      const wallet = await this.wallet(payoutId);
      const melted = await wallet.meltProofsBolt11(prepared.quote, prepared.proofs.map(toCashu), undefined, {
        type: 'deterministic',
        counter: 0,
      });
      if (melted.quote.state === 'PAID') {
        const change = melted.change.reduce((n, p) => n + p.amount.toBigInt(), 0n);
        return { state: 'paid', fee: prepared.inputs - prepared.amount - change };
      }
    } catch (err) {
      this.options.log?.warn(
        { err, mint: this.url },
        'payout: melt failed or its answer was lost; asking the quote',
      );
    }
    // The quote's state is the truth, whatever the melt call answered.
    return this.state(payoutId, prepared.quote.quote, prepared.amount, prepared.inputs);
  }

  /** How the melt of payout `payoutId` (quote `quoteId`, `inputs` melted for `amount`) stands. */
  async state(payoutId: string, quoteId: string, amount: bigint, inputs: bigint): Promise<PayoutOutcome> {
    try {
      const wallet = await this.wallet(payoutId);
      const quote = await wallet.checkMeltQuoteBolt11(quoteId);
      if (quote.state === 'PENDING') return { state: 'pending' };
      // UNPAID after a melt: the mint released the inputs (or never got them); nothing was paid.
      if (quote.state === 'UNPAID') return { state: 'failed', reason: 'the mint did not pay the invoice' };
      const change = (await wallet.restore(0, MAX_CHANGE_OUTPUTS)).proofs;
      const back = change.reduce((n, p) => n + p.amount.toBigInt(), 0n);
      return { state: 'paid', fee: inputs - amount - back };
    } catch (err) {
      this.options.log?.warn({ err, mint: this.url }, 'payout: melt quote state unknown; stays pending');
      return { state: 'pending' };
    }
  }

  /**
   * Unspent proofs the node holds here, in the order a melt takes them: the change of
   * `earlierPayouts` first, oldest payout first (so that an earlier payout's change, down to its
   * smallest proof, is spent and stops being asked about, instead of lingering beside newer
   * change), then the proofs of ended leases, largest first (fewest inputs, least input fee).
   * With the payouts whose change is all spent (a proof pending in a melt is not: that melt may fail).
   */
  private async held(earlierPayouts: readonly string[]): Promise<{ proofs: Proof[]; changeSpent: string[] }> {
    let proofs: Proof[];
    try {
      proofs = await this.options.trusted.held(this.url);
    } catch (err) {
      if (err instanceof MintUnavailable) throw unavailable(this.url, err);
      throw err;
    }
    const fromLeases = proofs.sort((a, b) => b.amount - a.amount);
    proofs = [];
    const changeSpent: string[] = [];
    for (const id of earlierPayouts) {
      const wallet = await this.wallet(id);
      const change = (await wallet.restore(0, MAX_CHANGE_OUTPUTS)).proofs;
      if (change.length === 0) {
        changeSpent.push(id);
        continue;
      }
      const states = await wallet.checkProofsStates(change);
      const unspent = change.filter((_, i) => states[i]?.state === 'UNSPENT').map(fromCashu);
      proofs.push(...unspent.sort((a, b) => b.amount - a.amount));
      if (change.every((_, i) => states[i]?.state === 'SPENT')) changeSpent.push(id);
    }
    proofs.push(...fromLeases);
    return { proofs, changeSpent };
  }

  /** A cashu-ts wallet of this mint; with a payout id, seeded for that payout's change outputs. */
  private async wallet(payoutId?: string): Promise<Wallet> {
    const bip39seed =
      payoutId === undefined
        ? undefined
        : new Uint8Array(
            Buffer.concat([
              this.options.secret.derive('payout-seed', `${payoutId}/0`),
              this.options.secret.derive('payout-seed', `${payoutId}/1`),
            ]),
          );
    const wallet = new Wallet(this.url, { unit: this.options.unit, bip39seed });
    try {
      await wallet.loadMint();
    } catch (err) {
      throw unavailable(this.url, err);
    }
    return wallet;
  }
}

function toCashu(p: Proof) {
  return { id: p.id, amount: CashuAmount.from(p.amount), secret: p.secret, C: p.C };
}

function fromCashu(p: CashuProof): Proof {
  return { id: p.id, amount: p.amount.toNumber(), secret: p.secret, C: p.C };
}

function unavailable(url: string, cause: unknown): AlacarteError {
  return new AlacarteError('mint_unavailable', `the trusted mint ${url} cannot be reached right now; retry`, {
    cause,
  });
}

function refused(url: string, what: string, cause: unknown): AlacarteError {
  const detail = cause instanceof Error ? cause.message.slice(0, 200) : 'unknown error';
  return new AlacarteError('payout_failed', `the trusted mint ${url} ${what}: ${detail}`, { cause });
}
