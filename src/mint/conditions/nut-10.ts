/**
 * NUT-10 well-known secrets: `[kind, {nonce, data, tags?}]` as a JSON string in Proof.secret.
 */

export interface WellKnownSecret {
  kind: string;
  nonce: string;
  data: string;
  /** Each tag: a name, then zero or more values; all non-empty strings. */
  tags: string[][];
}

/**
 * `secret: undefined` means a plain secret (anything that is not a JSON array opening with a
 * string): no conditions. `ok: false` means it claims to be well-known (a JSON array whose first
 * element is a string) but is malformed; such a proof must be refused, not treated as
 * anyone-can-spend, since its sender evidently meant to lock it.
 */
export type SecretParseResult =
  | { ok: true; secret: WellKnownSecret | undefined }
  | { ok: false; detail: string };

export interface SecretLimits {
  /** Longest secret string accepted at all. Default 16384 characters. */
  maxSecretLength: number;
  /** Most tags in one secret. Default 64. */
  maxTags: number;
  /** Most values in one tag (after the name). Default 64. */
  maxTagValues: number;
}

export const DEFAULT_SECRET_LIMITS: SecretLimits = { maxSecretLength: 16_384, maxTags: 64, maxTagValues: 64 };

/**
 * Cheap pre-filter: false means the secret is certainly plain (no conditions to check). JSON allows
 * whitespace before the opening bracket, and so does this; callers that skip
 * checkSpendingConditions for plain secrets must use this test rather than look at the first char.
 */
export function mayCarryConditions(secret: string): boolean {
  return /^[ \t\n\r]*\[/.test(secret);
}

/** Parses Proof.secret as a NUT-10 well-known secret, bounded by `limits`. Never throws. */
export function parseWellKnownSecret(
  secret: string,
  limits: SecretLimits = DEFAULT_SECRET_LIMITS,
): SecretParseResult {
  if (typeof secret !== 'string') return { ok: false, detail: 'secret must be a string' };
  if (secret.length > limits.maxSecretLength) return { ok: false, detail: 'secret too long' };
  if (!mayCarryConditions(secret)) return { ok: true, secret: undefined };
  let json: unknown;
  try {
    json = JSON.parse(secret);
  } catch {
    return { ok: true, secret: undefined };
  }
  if (!Array.isArray(json) || typeof json[0] !== 'string') return { ok: true, secret: undefined };
  const malformed = (detail: string): SecretParseResult => ({
    ok: false,
    detail: `malformed secret: ${detail}`,
  });
  if (json.length !== 2) return malformed('expected [kind, {nonce, data, tags}]');
  const [kind, body] = json as [string, unknown];
  if (kind === '') return malformed('empty kind');
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return malformed('second element not an object');
  const { nonce, data, tags } = body as Record<string, unknown>;
  if (typeof nonce !== 'string') return malformed('nonce must be a string');
  if (typeof data !== 'string') return malformed('data must be a string');
  const parsedTags: string[][] = [];
  if (tags !== undefined && tags !== null) {
    if (!Array.isArray(tags)) return malformed('tags must be an array');
    if (tags.length > limits.maxTags) return malformed('too many tags');
    for (const tag of tags) {
      if (!Array.isArray(tag) || tag.length === 0) return malformed('a tag must be a non-empty array');
      if (tag.length - 1 > limits.maxTagValues) return malformed('too many tag values');
      if (!tag.every((v): v is string => typeof v === 'string' && v !== '')) {
        return malformed('tag entries must be non-empty strings');
      }
      parsedTags.push(tag);
    }
  }
  return { ok: true, secret: { kind, nonce, data, tags: parsedTags } };
}

/** The values of the tag named `name` (empty when it has none), or undefined when absent. */
export function tagValues(secret: WellKnownSecret, name: string): string[] | undefined {
  const tag = secret.tags.find((t) => t[0] === name);
  return tag?.slice(1);
}
