import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  blindMessage,
  bytesToHex,
  hashToCurve,
  parsePoint,
  unblindSignature,
} from '../../../src/mint/crypto/index.js';
import { secp } from '../../../src/mint/crypto/native.js';
import { removeServedSandboxes, type ServedNode, serveNode, tempDir } from '../../helpers/cli.js';
import { testDatabase, testPostgresUnavailable, testStoreIsPostgres } from '../../helpers/postgres.js';

/**
 * Rule: a swap the mint answered is on disk. The built node (`alacarte serve`, SQLite file: its
 * swaps commit in the spend worker's own connection) is killed with SIGKILL while swaps are in
 * flight; started again on the same data directory, it must know every answered swap — its inputs
 * SPENT (NUT-07), its outputs' signatures the same (NUT-09) — and every other swap either whole or
 * not at all. In the `postgres` project the node's store is a database of the run's PostgreSQL
 * server (its swap commits in one statement). (SIGKILL leaves the kernel's page cache alone: this proves the answer waits for the
 * COMMIT, not for the disk; synchronous=FULL in the worker's connection is what waits for the disk.)
 */

const SWAPS = 240;
const CONNECTIONS = 12;
const KILL_AFTER = 60;

interface Keyset {
  id: string;
  keys: Record<string, string>;
}

interface SwapBody {
  inputs: Array<{ amount: number; id: string; secret: string; C: string }>;
  outputs: Array<{ amount: number; id: string; B_: string }>;
}

const encoder = new TextEncoder();

function randomScalar(): Uint8Array {
  for (;;) {
    const r = new Uint8Array(randomBytes(32));
    if (secp.privateKeyVerify(r)) return r;
  }
}

async function post(url: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** `n` proofs of 1 sat from the node's mint (its test Lightning backend pays the quote at once). */
async function mintOnes(mintUrl: string, keyset: Keyset, n: number): Promise<SwapBody['inputs']> {
  const A = parsePoint(keyset.keys['1']!)!;
  const quote = await post(`${mintUrl}/v1/mint/quote/bolt11`, { amount: n, unit: 'sat' });
  expect(quote.status).toBe(200);
  const prepared = Array.from({ length: n }, () => {
    const secret = bytesToHex(randomBytes(32));
    const r = randomScalar();
    return { secret, r, B_: bytesToHex(blindMessage(encoder.encode(secret), r)) };
  });
  const minted = await post(`${mintUrl}/v1/mint/bolt11`, {
    quote: (quote.json as { quote: string }).quote,
    outputs: prepared.map((p) => ({ amount: 1, id: keyset.id, B_: p.B_ })),
  });
  expect(minted.status).toBe(200);
  const signatures = (minted.json as { signatures: Array<{ C_: string }> }).signatures;
  return signatures.map((s, i) => ({
    amount: 1,
    id: keyset.id,
    secret: prepared[i]!.secret,
    C: bytesToHex(unblindSignature(parsePoint(s.C_)!, prepared[i]!.r, A)),
  }));
}

describe('kill -9 of the mint in the middle of swaps', () => {
  let node: ServedNode | undefined;
  const dataDir = tempDir('swap-crash');
  afterAll(async () => {
    // A node makes sandboxes ahead at start: the restarted one removes what the killed one left,
    // and its own on a graceful stop, so nothing stays mounted under the data directory.
    await node?.stop('SIGTERM');
    // What may still be mounted right after that exit is removed through a driver over the data
    // directory first, never deleted through a mounted layer (as private-data-dir.test.ts).
    await removeServedSandboxes();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const unavailable = testPostgresUnavailable();
  it.skipIf(unavailable)(
    `keeps every answered swap, and every other one whole or not at all ${unavailable ?? ''}`,
    async () => {
      const env = testStoreIsPostgres() ? { ALACARTE_STORE_URL: await testDatabase() } : {};
      node = await serveNode({ dataDir, env });
      const first = node;
      const keyset = ((await (await fetch(`${first.mintUrl}/v1/keys`)).json()) as { keysets: Keyset[] })
        .keysets[0]!;
      const proofs = await mintOnes(first.mintUrl, keyset, SWAPS);
      const swaps: SwapBody[] = proofs.map((p) => ({
        inputs: [p],
        outputs: [{ amount: 1, id: keyset.id, B_: bytesToHex(secp.publicKeyCreate(randomScalar(), true)) }],
      }));
      const answered = new Map<number, unknown>();
      let next = 0;
      await Promise.all(
        Array.from({ length: CONNECTIONS }, async () => {
          while (next < swaps.length) {
            const i = next++;
            try {
              const res = await post(`${first.mintUrl}/v1/swap`, swaps[i]);
              if (res.status === 200) answered.set(i, res.json);
              // Enough answers: the kill lands among swaps being verified, signed and committed.
              if (answered.size === KILL_AFTER) first.process.kill('SIGKILL');
            } catch {
              // Cut off by the kill: no answer, so no promise either way.
            }
          }
        }),
      );
      await first.stop('SIGKILL');
      expect(answered.size).toBeGreaterThanOrEqual(KILL_AFTER);

      node = await serveNode({ dataDir, env });
      const { mintUrl } = node;
      const ys = swaps.map((s) => bytesToHex(hashToCurve(encoder.encode(s.inputs[0]!.secret))));
      const states = (
        (await post(`${mintUrl}/v1/checkstate`, { Ys: ys })).json as { states: Array<{ state: string }> }
      ).states.map((s) => s.state);
      const restored = (await post(`${mintUrl}/v1/restore`, { outputs: swaps.map((s) => s.outputs[0]) }))
        .json as { outputs: Array<{ B_: string }>; signatures: unknown[] };
      const signedB = new Map(restored.outputs.map((o, i) => [o.B_, restored.signatures[i]]));
      let committed = 0;
      for (const [i, swap] of swaps.entries()) {
        const signature = signedB.get(swap.outputs[0]!.B_);
        const answer = answered.get(i);
        if (answer !== undefined) {
          // Answered: on disk, with the very signature the wallet got.
          expect(states[i]).toBe('SPENT');
          expect(answer).toEqual({ signatures: [signature] });
        }
        // Whole or not at all: the input spent exactly when the output was signed.
        expect({ i, state: states[i], signed: signature !== undefined }).toEqual({
          i,
          state: signature === undefined ? 'UNSPENT' : 'SPENT',
          signed: signature !== undefined,
        });
        if (signature !== undefined) committed++;
      }
      expect(committed).toBeGreaterThanOrEqual(answered.size);
      // The unanswered ones can be retried against the restarted node: NUT-19 gives the committed
      // ones their signatures, the rest commit now.
      for (const [i, swap] of swaps.entries()) {
        if (answered.has(i)) continue;
        const again = await post(`${mintUrl}/v1/swap`, swap);
        expect({ i, status: again.status }).toEqual({ i, status: 200 });
      }
    },
    120_000,
  );
});
