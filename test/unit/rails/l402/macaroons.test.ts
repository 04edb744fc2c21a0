import { describe, expect, it } from 'vitest';
import { NodeSecret } from '../../../../src/leases/node-secret.js';
import { mintMacaroon, paymentHashOf, verifyMacaroon } from '../../../../src/rails/l402/macaroons.js';

const secret = NodeSecret.fromBytes(new Uint8Array(32).fill(7));
const hash = 'ab'.repeat(32);

describe('L402 macaroons (Aperture format)', () => {
  it('carry version, payment hash and token id in the identifier, and verify with the node secret', () => {
    const m = mintMacaroon(secret, 'alacarte', hash, { services: 'alacarte:0', alacarte_seconds: '60' });
    const v = verifyMacaroon(secret, m.base64);
    expect(v).toEqual({
      paymentHash: hash,
      tokenId: m.tokenId,
      conditions: { services: 'alacarte:0', alacarte_seconds: '60' },
    });
  });

  // What minting and verifying cost is measured in bench/macaroons.bench.mjs, not asserted here.
  it('encode in the binary V2 form the library reads, with many caveats', async () => {
    const { importMacaroons, newMacaroon } = await import('macaroon');
    const conditions = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, `v${i}`]));
    const m = mintMacaroon(secret, 'alacarte', hash, conditions);
    // Every caveat read back, in order, and the library itself reads the same twelve.
    expect(verifyMacaroon(secret, m.base64)?.conditions).toEqual(conditions);
    expect(Object.keys(verifyMacaroon(secret, m.base64)?.conditions ?? {})).toEqual(Object.keys(conditions));
    const [read] = importMacaroons(m.base64);
    expect(read?.caveats.map((c) => Buffer.from(c.identifier).toString())).toEqual(
      Object.entries(conditions).map(([k, v]) => `${k}=${v}`),
    );
    // Byte for byte what the library writes where its encoder works (three caveats or fewer).
    const fixed = () => Buffer.alloc(32, 1);
    const ours = mintMacaroon(secret, 'alacarte', hash, { a: '1', b: '2' }, fixed);
    const [imported] = importMacaroons(ours.base64);
    const lib = newMacaroon({
      identifier: Uint8Array.from(Buffer.concat([Buffer.from([0, 0]), Buffer.from(hash, 'hex'), fixed()])),
      location: 'alacarte',
      rootKey: Uint8Array.from(secret.derive('l402-root-key', fixed().toString('hex'))),
      version: 2,
    });
    lib.addFirstPartyCaveat('a=1');
    lib.addFirstPartyCaveat('b=2');
    expect(Buffer.from(lib.exportBinary()).toString('base64')).toBe(ours.base64);
    expect(Buffer.from(imported?.signature ?? []).equals(Buffer.from(lib.signature))).toBe(true);
  });

  it('do not verify under another secret, tampered, or malformed', () => {
    const m = mintMacaroon(secret, 'alacarte', hash, { a: 'b' });
    expect(verifyMacaroon(NodeSecret.fromBytes(new Uint8Array(32)), m.base64)).toBeUndefined();
    const raw = Buffer.from(m.base64, 'base64');
    raw[raw.length - 3] = (raw[raw.length - 3] ?? 0) ^ 1;
    expect(verifyMacaroon(secret, raw.toString('base64'))).toBeUndefined();
    for (const junk of ['', 'x', '!!!', 'A'.repeat(5000), 'AgEBYQ=='])
      expect(verifyMacaroon(secret, junk)).toBeUndefined();
  });

  it('hash preimages as Lightning does', () => {
    expect(paymentHashOf('00'.repeat(32))).toBe(
      '66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925',
    );
    expect(paymentHashOf('zz')).toBeUndefined();
  });
});
