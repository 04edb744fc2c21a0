/**
 * The small part of CBOR (RFC 8949) that NUT-18 payment requests use: unsigned integers, text,
 * arrays, maps with text keys, booleans and null. Encoding only — we issue requests, wallets read them.
 */
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | CborValue[]
  | { [key: string]: CborValue };

export function encodeCbor(value: CborValue): Uint8Array {
  const out: number[] = [];
  write(out, value);
  return Uint8Array.from(out);
}

function write(out: number[], value: CborValue): void {
  if (value === null) {
    out.push(0xf6);
  } else if (value === true || value === false) {
    out.push(value ? 0xf5 : 0xf4);
  } else if (typeof value === 'number' || typeof value === 'bigint') {
    const n = BigInt(value);
    if (n < 0n) throw new RangeError('negative integers are not used in payment requests');
    head(out, 0, n);
  } else if (typeof value === 'string') {
    const bytes = new TextEncoder().encode(value);
    head(out, 3, BigInt(bytes.length));
    for (const b of bytes) out.push(b);
  } else if (Array.isArray(value)) {
    head(out, 4, BigInt(value.length));
    for (const item of value) write(out, item);
  } else {
    const entries = Object.entries(value);
    head(out, 5, BigInt(entries.length));
    for (const [k, v] of entries) {
      write(out, k);
      write(out, v);
    }
  }
}

function head(out: number[], major: number, n: bigint): void {
  const m = major << 5;
  if (n < 24n) out.push(m | Number(n));
  else if (n < 0x100n) out.push(m | 24, Number(n));
  else if (n < 0x10000n) out.push(m | 25, ...bytesOf(n, 2));
  else if (n < 0x100000000n) out.push(m | 26, ...bytesOf(n, 4));
  else out.push(m | 27, ...bytesOf(n, 8));
}

function bytesOf(n: bigint, width: number): number[] {
  const bytes: number[] = [];
  for (let i = width - 1; i >= 0; i--) bytes.push(Number((n >> BigInt(8 * i)) & 0xffn));
  return bytes;
}
