import { createServer } from 'node:net';
import { Wallet } from '@cashu/cashu-ts';
import { describe, expect, it } from 'vitest';
import { describeError } from '../../../src/cli/renter/ui.js';

describe('describeError', () => {
  it("says where nothing answered instead of Node's bare 'fetch failed' (a wallet's mint that is down)", async () => {
    // A port that was just free: nothing listens there now.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
      });
    });
    const err = await fetch(`http://127.0.0.1:${port}/v1/keys`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(describeError(err, 'wallet send')).toEqual({
      line: `alacarte wallet send: nothing answers at 127.0.0.1:${port} (ECONNREFUSED)`,
      hint: "is the node whose mint holds this wallet's ecash running? (--url or ALACARTE_URL names the node)",
      code: 1,
    });

    // The same failure as cashu-ts reports it (its wallet's calls to the mint): wrapped once more.
    const wallet = new Wallet(`http://127.0.0.1:${port}`, { unit: 'sat' });
    const wrapped = await wallet.loadMint().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((wrapped as Error).message).toBe('fetch failed');
    expect(describeError(wrapped, 'extend').line).toBe(
      `alacarte extend: nothing answers at 127.0.0.1:${port} (ECONNREFUSED)`,
    );
  });
});
