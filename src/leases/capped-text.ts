/**
 * The text of a command's output that was cut at a byte cap: UTF-8, less an incomplete character the
 * cut left at its end (which would otherwise decode as U+FFFD, a character the command never wrote).
 * Output that was not cut is decoded as it is: a program's own invalid or unfinished UTF-8 still
 * shows as U+FFFD, as in any UTF-8 text decoding (WHATWG Encoding, "replacement").
 *
 * `bytes`: the output kept; `cut`: whether it was cut at the cap (its length is then the cap).
 */
export function cappedText(bytes: Buffer, cut: boolean): string {
  if (!cut) return bytes.toString('utf8');
  // The last character's lead byte is among the last four bytes (UTF-8: at most 4 per character).
  for (let back = 1; back <= Math.min(4, bytes.length); back++) {
    const b = bytes[bytes.length - back] ?? 0;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: keep looking back for its lead
    const needs = b >= 0xf8 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1; // 0xf8-0xff lead nothing
    return bytes.subarray(0, needs > back ? bytes.length - back : bytes.length).toString('utf8');
  }
  return bytes.toString('utf8');
}
