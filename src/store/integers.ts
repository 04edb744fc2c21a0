import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely';

/**
 * How the store hands out integers, the same in both dialects: a `number` where it is a safe
 * integer (|n| < 2^53, every amount and time in practice), an exact `bigint` beyond — never a
 * rounded number. Code that may meet such sums reads them with `BigInt(value)` or `Number(value)`.
 */
export type StoredInteger = number | bigint;

/**
 * Parses PostgreSQL's text form of an int8 or numeric (what `pg` hands out for `bigint` columns,
 * `count(*)` and `sum(...)`): a number if it is a safe integer, an exact bigint if it is a larger
 * integer, a float for a non-integer numeric.
 */
export function parseInteger(text: string): StoredInteger {
  if (!/^-?[0-9]+$/.test(text)) return Number(text);
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A bigint read from SQLite (safe-integer mode) as the store hands it out (StoredInteger). */
function narrow(value: bigint): StoredInteger {
  return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value;
}

/**
 * SQLite side of StoredInteger: better-sqlite3 reads every integer as a bigint (defaultSafeIntegers),
 * this narrows the safe ones back to numbers, so a value beyond 2^53 is the only bigint left.
 */
export class IntegersPlugin implements KyselyPlugin {
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    for (const row of args.result.rows) {
      for (const key in row) {
        const value = row[key];
        if (typeof value === 'bigint') row[key] = narrow(value);
      }
    }
    return args.result;
  }
}
