import { createHash } from 'node:crypto';
import type { Amount } from '../core/amount.js';
import type { PaymentKey } from '../core/ids.js';
import { isUniqueViolation } from '../mint/store/mint-store.js';
import type { PaymentRail, PaymentRequest, Redeemed, Rejection } from '../rails/payment-rail.js';
import type { Answer } from './answer.js';
import type { InFlight } from './in-flight.js';
import type { Replays } from './replays.js';

/**
 * The Idempotency-Key of a paid request (create and extend: API.md, "Only the payment unlocks a
 * replay"). A key is bound to the payment it first came with (stored as its hash beside that
 * payment, `payments.idempotency_hash`, unique); the same key with no payment or another payment
 * is `409 idempotency_conflict` and the other payment stays untouched. The payment itself decides
 * whether a request is a replay (Replays), so a key only ever refuses.
 */
export class IdempotencyKey {
  /** The stored form of the key: sha256 hex of a prefixed key (the key itself is never stored). */
  readonly hash: string;
  private readonly inFlightKeys: string[];

  constructor(
    key: string,
    private readonly inFlight: InFlight<Answer>,
    private readonly replays: Replays,
  ) {
    this.hash = createHash('sha256').update(`idempotency/${key}`).digest('hex');
    this.inFlightKeys = [`idem/${this.hash}`];
  }

  /** The request's key, if it sent one (the Idempotency-Key header, or an MCP tool's argument). */
  static of(
    key: string | undefined,
    inFlight: InFlight<Answer>,
    replays: Replays,
  ): IdempotencyKey | undefined {
    return key === undefined ? undefined : new IdempotencyKey(key, inFlight, replays);
  }

  /**
   * In the rail's admit, before any money moves: holds the payment's turn (and the key's, if any)
   * until the release is called. Under a key it first waits for a request under the same key that
   * is under way (its outcome decides what the key is bound to), then refuses the key when it is
   * bound to another payment.
   */
  static async hold(
    inFlight: InFlight<Answer>,
    payment: PaymentKey,
    idem?: IdempotencyKey,
  ): Promise<() => void> {
    if (!idem) return inFlight.hold([`pay/${payment}`]);
    await inFlight.settled(idem.inFlightKeys);
    await idem.replays.checkKey(idem.hash, payment);
    return inFlight.hold([`pay/${payment}`, ...idem.inFlightKeys]);
  }

  /** Once the payment holds its turn: another payment may have bound the key while it waited. */
  recheck(payment: PaymentKey): Promise<void> {
    return this.replays.checkKey(this.hash, payment);
  }

  /** A request under this key without a usable payment: 409 when the key is bound to one. */
  async refuseUnpaid(): Promise<void> {
    await this.inFlight.settled(this.inFlightKeys);
    await this.replays.checkKey(this.hash, undefined);
  }

  /**
   * The rail's redeem under this key. Should another node replica have bound the key to another
   * payment meanwhile, the store's unique constraint refuses the record, the transaction (and with
   * it the spend at this node's mint) rolls back, and the payer gets the conflict with the token
   * untouched.
   */
  async redeem(rail: PaymentRail, request: PaymentRequest, price: Amount): Promise<Redeemed | Rejection> {
    let key: PaymentKey | undefined;
    try {
      return await rail.redeem(
        {
          ...request,
          admit: async (payment) => {
            key = payment.key;
            await request.admit?.(payment);
          },
        },
        price,
      );
    } catch (err) {
      if (key && isUniqueViolation(err)) await this.replays.checkKey(this.hash, key);
      throw err;
    }
  }
}
