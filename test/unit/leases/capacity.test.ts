import { describe, expect, it } from 'vitest';
import { DEFAULT_OFFERS, type Offer } from '../../../src/core/offers.js';
import { fits, offersThatFit, without } from '../../../src/leases/capacity.js';

const base = DEFAULT_OFFERS[0] as Offer;
const offer = (id: string, vcpu: number): Offer => ({ ...base, id, vcpu, memoryMib: 16, diskMib: 1 });
const roomy = { memoryMib: 1e6, diskMib: 1e6, sandboxes: 1000 };

describe('how many of an offer fit, with fractional vCPUs', () => {
  it.each([
    { free: 0.3, vcpu: 0.1, fit: 3 },
    { free: 0.7, vcpu: 0.1, fit: 7 },
    { free: 0.6, vcpu: 0.2, fit: 3 },
    { free: 1.2, vcpu: 0.4, fit: 3 },
    { free: 0.75, vcpu: 0.25, fit: 3 },
  ])('$free vCPU free holds $fit of $vcpu', ({ free, vcpu, fit }) => {
    expect(fits({ ...roomy, vcpu: free }, offer('o', vcpu))).toBe(fit);
  });

  it('reservations of starts under way are taken out exactly', () => {
    const tenth = offer('tenth', 0.1);
    const left = without({ ...roomy, vcpu: 1 }, [tenth, tenth, tenth]);
    expect(offersThatFit(left, [tenth]).get('tenth')).toBe(7);
  });
});
