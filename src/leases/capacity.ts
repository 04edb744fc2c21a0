import type { Offer } from '../core/offers.js';
import type { DriverCapacity } from '../drivers/compute-driver.js';

/** How many more sandboxes of each offer fit in what the driver has free. */
export function offersThatFit(free: DriverCapacity, offers: readonly Offer[]): Map<string, number> {
  return new Map(offers.map((o) => [o.id, fits(free, o)]));
}

export function fits(free: DriverCapacity, offer: Offer): number {
  const n = Math.min(
    Math.floor(free.vcpu / offer.vcpu),
    Math.floor(free.memoryMib / offer.memoryMib),
    Math.floor(free.diskMib / offer.diskMib),
    free.sandboxes,
  );
  return Math.max(0, n);
}

/** What is left once the given offers (starts under way) are taken out. */
export function without(free: DriverCapacity, taken: Iterable<Offer>): DriverCapacity {
  const left = { ...free };
  for (const o of taken) {
    left.vcpu -= o.vcpu;
    left.memoryMib -= o.memoryMib;
    left.diskMib -= o.diskMib;
    left.sandboxes -= 1;
  }
  return left;
}
