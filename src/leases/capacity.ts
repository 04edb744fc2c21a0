import type { Offer } from '../core/offers.js';
import { capacityWithout, howManyFit } from '../drivers/capacity.js';
import type { DriverCapacity } from '../drivers/compute-driver.js';

/** How many more sandboxes of each offer fit in what the driver has free. */
export function offersThatFit(free: DriverCapacity, offers: readonly Offer[]): Map<string, number> {
  return new Map(offers.map((o) => [o.id, fits(free, o)]));
}

/** How many sandboxes of `offer` fit in `free`, counted exactly (milli-vCPUs, see drivers/capacity.ts). */
export function fits(free: DriverCapacity, offer: Offer): number {
  return howManyFit(free, offer);
}

/** What is left once the given offers (starts under way) are taken out. */
export function without(free: DriverCapacity, taken: Iterable<Offer>): DriverCapacity {
  return capacityWithout(free, taken);
}
