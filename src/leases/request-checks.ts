import { AlacarteError } from '../core/errors.js';
import {
  deadlineAllowed,
  IMAGE_NAME_PATTERN,
  parseLeaseInput,
  sandboxLimitsSchema,
} from '../core/lease-request.js';
import type { Offer } from '../core/offers.js';
import type { Logger } from '../log.js';

/**
 * Checks of the lease service that must happen before a payment is touched: anything a driver
 * would refuse after the payment (a bad image name, limits out of its range, a deadline it cannot
 * write) is refused here, at start-up for the operator's settings, per request for the renter's.
 */

/**
 * The images that can be sold: names a driver accepts. Others (e.g. a directory named `My Image`
 * in the images directory) are left out of /v1/offers with a warning, rather than sold and then
 * refused by the driver.
 */
export function sellableImages(images: readonly string[], log: Logger): string[] {
  const ok = images.filter((name) => IMAGE_NAME_PATTERN.test(name));
  for (const name of images) {
    if (!ok.includes(name))
      log.warn({ image: name.slice(0, 80) }, 'image name not accepted by the drivers; not offered');
  }
  return ok;
}

/** Throws (at start-up) when an offer grants limits no driver applies. */
export function requireSellableOffers(offers: readonly Offer[]): void {
  for (const o of offers) {
    try {
      parseLeaseInput(sandboxLimitsSchema, {
        vcpu: o.vcpu,
        memoryMib: o.memoryMib,
        pids: o.pids,
        diskMib: o.diskMib,
      });
    } catch (err) {
      throw new Error(`offer '${o.id}': ${(err as Error).message}`);
    }
  }
}

/**
 * Refuses (400 invalid_request, before payment) a lease that would end after the latest deadline
 * a lease may have (core/lease-request.ts): `from` is the deadline it runs to now, or now.
 */
export function requireDeadlineAllowed(from: Date, seconds: number): void {
  if (!deadlineAllowed(new Date(from.getTime() + seconds * 1000))) {
    throw new AlacarteError('invalid_request', 'a lease cannot run past the end of year 9999');
  }
}

/** Throws `lease_not_running` unless the lease runs and its deadline is still ahead of `now`. */
export function requireRunning(row: { state: string; expires_at: number | bigint | null }, now: Date): void {
  if (row.state !== 'running' || Number(row.expires_at) <= now.getTime()) {
    throw new AlacarteError(
      'lease_not_running',
      `the lease is ${row.state === 'running' ? 'expired' : row.state}`,
    );
  }
}
