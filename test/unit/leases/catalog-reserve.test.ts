import { describe, expect, it } from 'vitest';
import { AlacarteError } from '../../../src/core/errors.js';
import { DEFAULT_OFFERS, type Offer } from '../../../src/core/offers.js';
import type { ComputeDriver, DriverCapacity } from '../../../src/drivers/compute-driver.js';
import { Catalog } from '../../../src/leases/catalog.js';
import { silentLogger } from '../../../src/log.js';

const offer = DEFAULT_OFFERS[0] as Offer;

/** A node with room for `max` sandboxes, `started` of them the driver counts already. */
function catalogWith(max: number, started: string[]): Catalog {
  const capacity = async (): Promise<DriverCapacity> => ({
    vcpu: 1000,
    memoryMib: 1e6,
    diskMib: 1e6,
    sandboxes: max - started.length,
    leases: new Set(started),
  });
  const driver = { capacity } as unknown as ComputeDriver;
  return new Catalog({ driver, offers: [offer], images: ['busybox'], logger: silentLogger() });
}

describe('capacity reserved for creates under way', () => {
  it('does not count twice a lease whose sandbox the driver counts already', async () => {
    // Two places; lease a's sandbox started (the driver counts it), its create not yet answered.
    const catalog = catalogWith(2, ['lse_a']);
    await catalog.reserve(offer, 'lse_a');
    // One place is left, and b gets it...
    await catalog.reserve(offer, 'lse_b');
    // ...after which none is: b's reservation counts until the driver counts b's sandbox.
    await expect(catalog.reserve(offer, 'lse_c')).rejects.toThrow(AlacarteError);
    expect((await catalog.capacity()).get(offer.id)).toBe(0);
  });

  it('counts every reservation without a lease id', async () => {
    const catalog = catalogWith(2, ['lse_a']);
    await catalog.reserve(offer);
    await expect(catalog.reserve(offer)).rejects.toMatchObject({ code: 'no_capacity' });
  });

  it('gives the place back when the reservation is released', async () => {
    const catalog = catalogWith(1, []);
    const release = await catalog.reserve(offer, 'lse_a');
    await expect(catalog.reserve(offer, 'lse_b')).rejects.toMatchObject({ code: 'no_capacity' });
    release();
    await catalog.reserve(offer, 'lse_b');
  });
});
