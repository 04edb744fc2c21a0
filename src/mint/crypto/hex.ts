const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

/** Strict hex decoding: returns undefined for odd length or any non-hex character (either case accepted). */
export function hexToBytes(hex: string): Uint8Array | undefined {
  if (typeof hex !== 'string' || !HEX_RE.test(hex)) return undefined;
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Lowercase hex of the bytes. */
export function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
