import { createHash, randomBytes } from 'node:crypto';
import bolt11 from 'bolt11';
import { type Bolt11Network, bolt11NetworkParams } from '../../../src/lightning/bolt11.js';

/** A signed invoice of some other node, for tests that need an outside invoice. */
export function foreignInvoice(options: {
  network: Bolt11Network;
  amountMsat?: bigint;
  /** seconds since the epoch; default now */
  timestamp?: number;
  expirySeconds?: number;
  description?: string;
  /** Reuse someone else's payment hash (then `preimage` does not match it). */
  paymentHash?: string;
}): { bolt11: string; paymentHash: string; preimage: string } {
  const preimage = randomBytes(32);
  const paymentHash = options.paymentHash ?? createHash('sha256').update(preimage).digest('hex');
  const unsigned = bolt11.encode({
    network: bolt11NetworkParams(options.network),
    ...(options.amountMsat === undefined ? {} : { millisatoshis: options.amountMsat.toString() }),
    timestamp: options.timestamp ?? Math.floor(Date.now() / 1000),
    tags: [
      { tagName: 'payment_hash', data: paymentHash },
      { tagName: 'payment_secret', data: randomBytes(32).toString('hex') },
      { tagName: 'description', data: options.description ?? 'elsewhere' },
      { tagName: 'expire_time', data: options.expirySeconds ?? 3600 },
    ],
  });
  const signed = bolt11.sign(unsigned, randomBytes(32));
  if (signed.paymentRequest === undefined) throw new Error('bolt11 did not sign');
  return { bolt11: signed.paymentRequest, paymentHash, preimage: preimage.toString('hex') };
}

/** A clock that only moves when told to. */
export function manualClock(start = Date.UTC(2026, 0, 1)): {
  now: () => number;
  advance: (ms: number) => void;
} {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

/** A reproducible byte stream (sha256 in counter mode), so that tests can inject the randomness. */
export function seededRandom(seed: string): (size: number) => Uint8Array {
  let counter = 0;
  return (size) => {
    const out = Buffer.alloc(size);
    for (let filled = 0; filled < size; filled += 32) {
      createHash('sha256').update(`${seed}:${counter++}`).digest().copy(out, filled);
    }
    return out;
  };
}

export function sha256Hex(hex: string): string {
  return createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex');
}
