import { randomBytes } from 'node:crypto';

/**
 * Deadline moves the in-instance init takes only from the node (issue 12): each move is a line
 * `<deadline> <move> <tag>`, where `deadline` is epoch seconds, `move` a number that grows with
 * every move, and `tag` SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012) of the 16 bytes `deadline || move` (each an unsigned 64-bit little-endian word) under a
 * 128-bit key that only the node and init hold, written as a signed 64-bit decimal. The key reaches
 * init through LXC's config (raw.lxc), which the instance cannot read, and init keeps it in memory
 * that its tenant cannot read (init is not dumpable and the instance lacks CAP_SYS_PTRACE). A
 * tenant sees every move it is sent, so `move` must grow: an old, later deadline cannot be played
 * again after the node moved it earlier. SipHash, and not HMAC, because init is a busybox shell
 * that must never fork: its 64-bit arithmetic computes SipHash (SEAL_SHELL_FUNCTIONS).
 */

const MASK = (1n << 64n) - 1n;

/**
 * A fresh 128-bit key: SipHash's two 64-bit words `k0:k1`, each a signed 64-bit decimal (no space, as
 * it is one word of LXC's `lxc.init.cmd`).
 */
export function newSealKey(): string {
  const key = randomBytes(16);
  return `${BigInt.asIntN(64, key.readBigUInt64LE(0))}:${BigInt.asIntN(64, key.readBigUInt64LE(8))}`;
}

/** A key as newSealKey writes it. */
export const SEAL_KEY_PATTERN = /^-?[0-9]{1,19}:-?[0-9]{1,19}$/;

const rotl = (x: bigint, b: bigint) => ((x << b) | (x >> (64n - b))) & MASK;

/**
 * SipHash-2-4 of `message` under the 16-byte `key` (the reference algorithm: 2 compression rounds
 * per 8-byte word, 4 finalization rounds), as an unsigned 64-bit integer.
 */
export function sipHash24(key: Buffer, message: Buffer): bigint {
  if (key.length !== 16) throw new Error('SipHash key must be 16 bytes');
  const k0 = key.readBigUInt64LE(0);
  const k1 = key.readBigUInt64LE(8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = () => {
    v0 = (v0 + v1) & MASK;
    v1 = rotl(v1, 13n) ^ v0;
    v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & MASK;
    v3 = rotl(v3, 16n) ^ v2;
    v0 = (v0 + v3) & MASK;
    v3 = rotl(v3, 21n) ^ v0;
    v2 = (v2 + v1) & MASK;
    v1 = rotl(v1, 17n) ^ v2;
    v2 = rotl(v2, 32n);
  };
  const full = message.length - (message.length % 8);
  const words: bigint[] = [];
  for (let i = 0; i < full; i += 8) words.push(message.readBigUInt64LE(i));
  let last = BigInt(message.length & 0xff) << 56n;
  for (let i = full; i < message.length; i++) last |= BigInt(message[i] as number) << BigInt(8 * (i - full));
  words.push(last);
  for (const m of words) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  v2 ^= 0xffn;
  for (let i = 0; i < 4; i++) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

/** The key words of `key` (newSealKey's text) as the 16 bytes SipHash takes. */
function keyBytes(key: string): Buffer {
  if (!SEAL_KEY_PATTERN.test(key)) throw new Error('bad seal key');
  const [k0, k1] = key.split(':').map((w) => BigInt.asUintN(64, BigInt(w)));
  const bytes = Buffer.alloc(16);
  bytes.writeBigUInt64LE(k0 as bigint, 0);
  bytes.writeBigUInt64LE(k1 as bigint, 8);
  return bytes;
}

/**
 * The line that moves init's deadline to `deadlineSeconds` (epoch seconds) as move number `move`
 * (greater than every earlier move of the instance), without a newline.
 */
export function sealedMove(key: string, deadlineSeconds: number, move: number): string {
  if (!Number.isSafeInteger(deadlineSeconds) || deadlineSeconds < 0) throw new Error('bad deadline');
  if (!Number.isSafeInteger(move) || move < 1) throw new Error('bad move');
  const message = Buffer.alloc(16);
  message.writeBigUInt64LE(BigInt(deadlineSeconds), 0);
  message.writeBigUInt64LE(BigInt(move), 8);
  const tag = BigInt.asIntN(64, sipHash24(keyBytes(key), message));
  return `${deadlineSeconds} ${move} ${tag}`;
}

/**
 * busybox ash functions that check a move line, with no fork: `seal_check D N T` returns 0 when T
 * is the tag of (D, N) under the key in `$k0 $k1` (as sealedMove computes it). ash's arithmetic is
 * 64-bit two's complement and wraps on overflow, as SipHash's additions do; its `>>` keeps the sign,
 * so each rotation masks the bits shifted in. The callers have checked that D, N and T are decimal
 * numbers without leading zeros (a leading 0 would read as octal).
 */
export const SEAL_SHELL_FUNCTIONS = `sr() {
  v0=$((v0 + v1)); v1=$(((v1 << 13) | ((v1 >> 51) & 0x1fff))); v1=$((v1 ^ v0)); v0=$(((v0 << 32) | ((v0 >> 32) & 0xffffffff)))
  v2=$((v2 + v3)); v3=$(((v3 << 16) | ((v3 >> 48) & 0xffff))); v3=$((v3 ^ v2))
  v0=$((v0 + v3)); v3=$(((v3 << 21) | ((v3 >> 43) & 0x1fffff))); v3=$((v3 ^ v0))
  v2=$((v2 + v1)); v1=$(((v1 << 17) | ((v1 >> 47) & 0x1ffff))); v1=$((v1 ^ v2)); v2=$(((v2 << 32) | ((v2 >> 32) & 0xffffffff)))
}
seal_check() {
  v0=$((k0 ^ 0x736f6d6570736575)); v1=$((k1 ^ 0x646f72616e646f6d))
  v2=$((k0 ^ 0x6c7967656e657261)); v3=$((k1 ^ 0x7465646279746573))
  for m in $1 $2 $((16 << 56)); do v3=$((v3 ^ m)); sr; sr; v0=$((v0 ^ m)); done
  v2=$((v2 ^ 0xff)); sr; sr; sr; sr
  [ "$((v0 ^ v1 ^ v2 ^ v3))" = "$3" ]
}`;
