import { getDecodedToken, getTokenMetadata, type Token } from '@cashu/cashu-ts';
import type { Proof } from '../../mint/types.js';
import type { Rejection } from '../payment-rail.js';
import { normalizeMintUrl, toMintProofs } from './proofs.js';

/** Most entries a V3 token may name before it is refused unread. */
const MAX_V3_ENTRIES = 16;

/**
 * Which mints a token's proofs come from, before anything else is read.
 *
 * A V4 (`cashuB`) token names one mint. A V3 (`cashuA`) token may list several entries, each with
 * its own mint, which cashu-ts refuses to decode ("Multi entry token are not supported"). Entries
 * that all name the same mint are merged into one (returned as `token`, a single-entry V3 token
 * worth the same); entries of different mints come back as `mints` so the caller answers
 * `mint_not_accepted` rather than `invalid_token`. Anything else is passed on unchanged for the
 * decoder to judge.
 */
export function singleMint(header: string): { token: string } | { mints: string[] } {
  if (!header.startsWith('cashuA')) return { token: header };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(header.slice('cashuA'.length), 'base64').toString('utf8'));
  } catch {
    return { token: header };
  }
  if (typeof parsed !== 'object' || parsed === null) return { token: header };
  const entries = (parsed as { token?: unknown }).token;
  if (!Array.isArray(entries) || entries.length < 2) return { token: header };
  // More entries than any wallet writes: left to the decoder, which refuses it as invalid.
  if (entries.length > MAX_V3_ENTRIES) return { token: header };
  const mints: string[] = [];
  const proofs: unknown[] = [];
  for (const entry of entries) {
    const mint = (entry as { mint?: unknown } | null)?.mint;
    const entryProofs = (entry as { proofs?: unknown } | null)?.proofs;
    // A malformed entry: let the decoder refuse the token as invalid.
    if (typeof mint !== 'string' || !Array.isArray(entryProofs)) return { token: header };
    if (!mints.some((m) => normalizeMintUrl(m) === normalizeMintUrl(mint))) mints.push(mint);
    proofs.push(...entryProofs);
  }
  if (mints.length > 1) return { mints };
  const merged = { ...(parsed as Record<string, unknown>), token: [{ mint: mints[0], proofs }] };
  return { token: `cashuA${Buffer.from(JSON.stringify(merged)).toString('base64url')}` };
}

/**
 * Decodes a token whose metadata already parsed, resolving short V4 keyset ids against
 * `keysetIds` (the ids of the mint the token names). `foreign` when a proof's keyset is not one of
 * them: the proofs were signed by another mint (or by none), which is `mint_not_accepted`, not a
 * malformed token. `invalid` when it cannot be decoded at all.
 */
export function decodeForMint(
  token: string,
  keysetIds: readonly string[],
): { ok: true; token: Token } | { ok: false; reason: 'invalid' | 'foreign' } {
  try {
    getTokenMetadata(token);
  } catch {
    return { ok: false, reason: 'invalid' };
  }
  let decoded: Token;
  try {
    decoded = getDecodedToken(token, [...keysetIds]);
  } catch {
    // The structure parsed above; what fails now is mapping a keyset id to one of this mint's.
    return { ok: false, reason: 'foreign' };
  }
  const known = new Set(keysetIds.map((id) => id.toLowerCase()));
  if (decoded.proofs.some((p) => typeof p.id !== 'string' || !known.has(p.id.toLowerCase())))
    return { ok: false, reason: 'foreign' };
  return { ok: true, token: decoded };
}

/**
 * The proofs of a `decodeForMint` result in the mint's form, or the rejection the payer sees.
 * Proofs of keysets the mint does not list were signed elsewhere (or nowhere): the money is not of
 * an accepted mint, whatever the token says, so `foreign` is `mint_not_accepted` (naming
 * `mintLabel`, already fit to show). A token that does not decode, holds malformed proofs or more
 * than `maxProofs` proofs is `invalid_token`.
 */
export function proofsForMint(
  decoded: ReturnType<typeof decodeForMint>,
  mintLabel: string,
  maxProofs: number,
): { ok: true; proofs: Proof[] } | Rejection {
  if (!decoded.ok) {
    return decoded.reason === 'foreign'
      ? reject('mint_not_accepted', `the token holds proofs that ${mintLabel} did not sign`)
      : reject('invalid_token', 'the token cannot be decoded');
  }
  try {
    return { ok: true, proofs: toMintProofs(decoded.token.proofs, maxProofs) };
  } catch {
    return reject('invalid_token', 'the token cannot be decoded or holds malformed proofs');
  }
}

function reject(code: Rejection['code'], message: string): Rejection {
  return { ok: false, code, message };
}
