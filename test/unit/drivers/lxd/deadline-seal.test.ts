import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  newSealKey,
  SEAL_KEY_PATTERN,
  SEAL_SHELL_FUNCTIONS,
  sealedMove,
  sipHash24,
} from '../../../../src/drivers/lxd/deadline-seal.js';

const refKey = Buffer.from([...Array(16).keys()]);
const busybox = existsSync('/bin/busybox') ? '/bin/busybox' : undefined;

/** Runs seal_check in busybox ash with `key` on `line`; true when it accepts. */
function shellAccepts(key: string, line: string): boolean {
  const [k0, k1] = key.split(':');
  const r = spawnSync(
    busybox as string,
    [
      'sh',
      '-c',
      `${SEAL_SHELL_FUNCTIONS}\nk0=$1 k1=$2; shift 2; seal_check "$@"`,
      'sh',
      k0 ?? '',
      k1 ?? '',
      ...line.split(' '),
    ],
    { encoding: 'utf8' },
  );
  return r.status === 0;
}

describe('deadline seal (SipHash-2-4)', () => {
  it('matches the reference vectors of the SipHash paper (key 00..0f)', () => {
    expect(sipHash24(refKey, Buffer.alloc(0))).toBe(0x726fdb47dd0e0e31n);
    expect(sipHash24(refKey, Buffer.from([...Array(15).keys()]))).toBe(0xa129ca6149be45e5n);
  });

  it('writes keys as two signed 64-bit words', () => {
    for (let i = 0; i < 50; i++) expect(newSealKey()).toMatch(SEAL_KEY_PATTERN);
  });

  it.skipIf(!busybox)(
    'is computed the same by the busybox shell init runs (no /bin/busybox: skipped)',
    () => {
      for (let i = 0; i < 20; i++) {
        const key = newSealKey();
        const deadline = 1_700_000_000 + Math.floor(Math.random() * 1e9);
        const move = 1 + Math.floor(Math.random() * 2 ** 52);
        const line = sealedMove(key, deadline, move);
        expect(shellAccepts(key, line)).toBe(true);
        const [d, n, t] = line.split(' ');
        // Any other deadline, move or tag, or another key, is refused.
        expect(shellAccepts(key, `${Number(d) + 1} ${n} ${t}`)).toBe(false);
        expect(shellAccepts(key, `${d} ${Number(n) + 1} ${t}`)).toBe(false);
        expect(shellAccepts(key, `${d} ${n} ${BigInt(t as string) ^ 1n}`)).toBe(false);
        expect(shellAccepts(newSealKey(), line)).toBe(false);
      }
    },
  );
});
