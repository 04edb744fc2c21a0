/**
 * NUT-10 well-known secrets: `[kind, {nonce, data, tags?}]` as a JSON string in Proof.secret.
 */

export interface WellKnownSecret {
  kind: string;
  nonce: string;
  data: string;
  /** Each tag: name then one or more non-empty string values. */
  tags: string[][];
}

/**
 * `secret: undefined` means a plain secret (not JSON of the well-known shape): no conditions.
 * `ok: false` means it claims to be well-known (a JSON array starting with a kind string) but is
 * malformed, and must be rejected rather than treated as anyone-can-spend.
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

/** Parses Proof.secret as a NUT-10 well-known secret, bounded by `limits`. Never throws. */
export function parseWellKnownSecret(
  secret: string,
  limits: SecretLimits = DEFAULT_SECRET_LIMITS,
): SecretParseResult {
  void secret;
  void limits;
  throw new Error('not implemented');
}

/** The values of the first tag named `name`, or undefined when absent. */
export function tagValues(secret: WellKnownSecret, name: string): string[] | undefined {
  const tag = secret.tags.find((t) => t[0] === name);
  return tag?.slice(1);
}
