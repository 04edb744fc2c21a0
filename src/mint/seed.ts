import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const SEED_BYTES = 32;

/**
 * The mint's master seed: every keyset's private keys derive from it, so it is the mint. Kept as
 * hex in one file that only the node's user may read (0600); created once, never rewritten.
 */
export function loadOrCreateSeed(path: string, random: (n: number) => Uint8Array = randomBytes): Uint8Array {
  try {
    return readSeed(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const seed = random(SEED_BYTES);
  try {
    // 'wx': if another process created it in between, keep theirs.
    writeFileSync(path, `${Buffer.from(seed).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return readSeed(path);
}

function readSeed(path: string): Uint8Array {
  const text = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64,128}$/.test(text) || text.length % 2 !== 0) {
    throw new Error(`mint seed file ${path} is not 32-64 bytes of lowercase hex`);
  }
  // Tighten permissions an operator may have loosened; the seed is the money.
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  return new Uint8Array(Buffer.from(text, 'hex'));
}
