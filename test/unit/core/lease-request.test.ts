import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { validateLimits, validateSpec } from '../../../src/drivers/crun/crun-driver.js';
import { createLeaseBody } from '../../../src/http/lease-schemas.js';

/**
 * The HTTP layer and the driver apply one schema (core/lease-request.ts): whatever the HTTP layer
 * lets through (before payment), the driver takes (after payment), and the other way round.
 */
const base = { offer: 'small', seconds: 3600, image: 'busybox' };
const x4000 = 'x'.repeat(4000);
const inputs: Array<Record<string, unknown>> = [
  {},
  { command: ['sh'] },
  { command: [] },
  { command: [''] },
  { command: ['', 'x'] },
  { command: ['x', ''] },
  { command: ['a\u0000'] },
  { command: ['\ud800'] },
  { command: ['😀'] },
  { command: Array(16).fill(x4000) },
  { command: Array(17).fill(x4000) },
  { command: Array(1025).fill('x') },
  { command: ['x'.repeat(64 * 1024)] },
  { command: ['é'.repeat(32 * 1024 + 1)] },
  { env: { A: 'b' } },
  { env: { '1A': 'b' } },
  { env: { A: 'b\u0000' } },
  { env: { A: '\udfff' } },
  { env: { A: '€'.repeat(2731) } },
  { env: Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`V${i}`, ''])) },
  { env: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`V${i}`, x4000])) },
  { ports: [80, 80] },
  { ports: [0] },
  { ports: Array.from({ length: 17 }, (_, i) => i + 1) },
  { image: 'Bad_Image' },
  { image: '../etc' },
  { image: 'debian-12.2' },
  { env: [] },
  { env: ['A=b'] },
  { env: null },
  { env: { A: 1 } },
  { command: 'sh' },
  { command: [1] },
  { ports: [80.5] },
  { ports: '80' },
  { image: 7 },
];

describe('the HTTP schema and the driver agree on every lease request', () => {
  it.each(inputs.map((extra, i) => ({ i, extra })))('input $i', ({ extra }) => {
    const http = createLeaseBody.safeParse({ ...base, ...extra }).success;
    let driver = true;
    try {
      const { offer: _o, seconds: _s, ...spec } = { ...base, ...extra };
      validateSpec({ leaseId: 'lse_test', ...(spec as { image: string }) });
    } catch {
      driver = false;
    }
    expect(http).toBe(driver);
  });
});

describe('a command names a program', () => {
  it('refuses an empty first part (before payment), with where it is; later parts may be empty', () => {
    const refused = createLeaseBody.safeParse({ ...base, command: ['', 'x'] });
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]?.path).toEqual(['command', 0]);
    expect(createLeaseBody.safeParse({ ...base, command: ['printf', ''] }).success).toBe(true);
  });
});

describe('offers the driver would refuse are refused in the configuration', () => {
  const offer = (vcpu: number) => ({
    id: 'o',
    vcpu,
    memory_mib: 64,
    pids: 64,
    disk_mib: 16,
    price: { amount_per_hour: 60, unit: 'sat' as const },
  });
  it.each([0.001, 0.005, 0.0125, 1e-9])('vcpu %s', (vcpu) => {
    expect(() => loadConfig({ flags: { offers: [offer(vcpu)] } })).toThrow();
  });
  it.each([0.01, 0.1, 0.25, 0.125, 2])('vcpu %s is taken, by the config and the driver', (vcpu) => {
    expect(() => loadConfig({ flags: { offers: [offer(vcpu)] } })).not.toThrow();
    expect(() => validateLimits({ vcpu, memoryMib: 64, pids: 64, diskMib: 16 })).not.toThrow();
  });
});
