import { describe, expect, it } from 'vitest';
import { NodeSecret } from '../../../../src/leases/node-secret.js';
import { TrustedMints } from '../../../../src/rails/cashu/trusted-mints.js';
import type { Database } from '../../../../src/store/database.js';

const base = {
  // Not touched by what these tests call.
  db: {} as unknown as Database,
  secret: NodeSecret.fromBytes(new Uint8Array(32).fill(1)),
  unit: 'sat',
  railId: 'cashu',
};

describe('TrustedMints', () => {
  it('recognises a trusted mint whatever its trailing slash or letter case', () => {
    const trusted = new TrustedMints({ ...base, urls: ['http://127.0.0.1:9000/Mint/'] });
    expect(trusted.urls()).toEqual(['http://127.0.0.1:9000/Mint']);
    expect(trusted.has('http://127.0.0.1:9000/mint')).toBe(true);
    expect(trusted.has('HTTP://127.0.0.1:9000/MINT///')).toBe(true);
    expect(trusted.has('http://127.0.0.1:9001/mint')).toBe(false);
  });

  it('refuses a trusted mint that is not an http(s) URL', () => {
    expect(() => new TrustedMints({ ...base, urls: ['file:///etc/passwd'] })).toThrow(/http/);
  });
});
