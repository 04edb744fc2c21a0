import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { Wallet } from '@cashu/cashu-ts';
import { describe, expect, it } from 'vitest';
import { describeError } from '../../../src/cli/renter/ui.js';
import { Amount } from '../../../src/core/amount.js';
import { AlacarteApiError } from '../../../src/sdk/errors.js';
import { InsufficientFundsError } from '../../../src/wallet/errors.js';

describe('describeError', () => {
  it("parseArgs' refusals in one line of its own words, and how to give a value that starts with '-'", () => {
    const refusal = (args: string[]) => {
      try {
        parseArgs({ args, options: { for: { type: 'string' } }, allowPositionals: true, strict: true });
      } catch (err) {
        return describeError(err, 'rent');
      }
      throw new Error('parsed');
    };
    expect(refusal(['--for', '-1h'])).toEqual({
      line: "alacarte rent: option '--for' argument is ambiguous: give its value, as --for=VALUE when it starts with '-'",
      hint: 'see: alacarte rent --help',
      code: 2,
    });
    // Node's advice about positionals (with an unbalanced quote) is left out.
    expect(refusal(['--foo']).line).toBe("alacarte rent: unknown option '--foo'");
  });

  it('not enough ecash of the mint a node takes, while other mints hold more, says both', () => {
    const sat = (n: number) => Amount.of(n, 'sat');
    const there = describeError(
      new InsufficientFundsError(sat(10), sat(0), sat(967), ['http://b.example/mint']),
      'rent',
    );
    expect(there).toEqual({
      line: 'alacarte rent: not enough ecash of the mint the node takes (http://b.example/mint): need 10 sat, have 0 sat; 967 sat more is at other mints, which this node does not take',
      hint: 'run: alacarte wallet topup 100 (with this node as --url: ecash of its own mint)',
      code: 1,
    });
    const none = describeError(
      new InsufficientFundsError(sat(120), sat(0), sat(0), ['http://b.example/mint']),
      'extend',
    );
    expect(none.line).toBe('alacarte extend: not enough ecash: need 120 sat, have 0 sat');
    expect(none.hint).toBe('run: alacarte wallet topup 200');
  });

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

  it("exec's stdin over the node's body limit says to send it as a file; other 413s add nothing", () => {
    const tooLarge = new AlacarteApiError('payload_too_large', 413, 'request body is too large');
    expect(describeError(tooLarge, 'exec').hint).toMatch(/send it as a file: alacarte cp/);
    expect(describeError(tooLarge, 'cp').hint).toBeUndefined();
  });
});
