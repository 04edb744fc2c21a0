import { describe, expect, it } from 'vitest';
import { cappedText } from '../../../src/leases/capped-text.js';

describe('the text of output cut at a byte cap', () => {
  it('drops an incomplete character at the cut, of each length, and keeps a complete one', () => {
    for (const char of ['é', '€', '𝄞']) {
      const whole = Buffer.from(`ab${char}`);
      // Every cut inside the character ends the text before it.
      for (let keep = 3; keep < whole.length; keep++) {
        expect(cappedText(whole.subarray(0, keep), true)).toBe('ab');
      }
      expect(cappedText(whole, true)).toBe(`ab${char}`);
    }
    expect(cappedText(Buffer.from('abc'), true)).toBe('abc');
    expect(cappedText(Buffer.alloc(0), true)).toBe('');
  });

  it("shows the program's own invalid or unfinished UTF-8 as U+FFFD, cut or not", () => {
    const invalid = Buffer.from([0x61, 0xff, 0x62]);
    expect(cappedText(invalid, true)).toBe('a\uFFFDb');
    const unfinished = Buffer.from([0x61, 0xe2, 0x82]);
    expect(cappedText(unfinished, false)).toBe('a\uFFFD');
    // Continuation bytes without a lead within four bytes are not a character the cut split.
    expect(cappedText(Buffer.from([0x61, 0x80, 0x80, 0x80, 0x80]), true)).toBe('a\uFFFD\uFFFD\uFFFD\uFFFD');
  });
});
