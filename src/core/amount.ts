/**
 * Money is never a `number`. An Amount is an immutable non-negative whole count of a unit, bounded
 * to u64 (what Cashu mints and Lightning use), checked here and only here.
 */
export const U64_MAX = (1n << 64n) - 1n;

export type Unit = string;

export class Amount {
  private constructor(
    readonly value: bigint,
    readonly unit: Unit,
  ) {}

  static of(value: bigint | number, unit: Unit = 'sat'): Amount {
    const v = typeof value === 'number' ? Amount.fromNumber(value) : value;
    if (v < 0n) throw new RangeError(`amount must not be negative: ${v}`);
    if (v > U64_MAX) throw new RangeError(`amount exceeds u64: ${v}`);
    return new Amount(v, unit);
  }

  static zero(unit: Unit = 'sat'): Amount {
    return new Amount(0n, unit);
  }

  /** Parses untrusted input (JSON number or decimal string) into an Amount, or returns undefined. */
  static parse(input: unknown, unit: Unit = 'sat'): Amount | undefined {
    let v: bigint;
    if (typeof input === 'number') {
      if (!Number.isSafeInteger(input) || input < 0) return undefined;
      v = BigInt(input);
    } else if (typeof input === 'bigint') {
      v = input;
    } else if (typeof input === 'string' && /^(0|[1-9][0-9]{0,19})$/.test(input)) {
      v = BigInt(input);
    } else {
      return undefined;
    }
    if (v < 0n || v > U64_MAX) return undefined;
    return new Amount(v, unit);
  }

  private static fromNumber(n: number): bigint {
    if (!Number.isSafeInteger(n)) throw new RangeError(`amount must be a safe integer: ${n}`);
    return BigInt(n);
  }

  add(other: Amount): Amount {
    this.sameUnit(other);
    return Amount.of(this.value + other.value, this.unit);
  }

  sub(other: Amount): Amount {
    this.sameUnit(other);
    return Amount.of(this.value - other.value, this.unit);
  }

  gte(other: Amount): boolean {
    this.sameUnit(other);
    return this.value >= other.value;
  }

  isZero(): boolean {
    return this.value === 0n;
  }

  /** For JSON bodies. Every amount the API shows stays far below 2^53 in practice; refuse otherwise. */
  toNumber(): number {
    if (this.value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('amount too large for JSON number');
    return Number(this.value);
  }

  toString(): string {
    return `${this.value} ${this.unit}`;
  }

  private sameUnit(other: Amount): void {
    if (other.unit !== this.unit) throw new TypeError(`unit mismatch: ${this.unit} vs ${other.unit}`);
  }
}
