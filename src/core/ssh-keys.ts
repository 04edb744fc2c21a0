import type { ParsedKey } from 'ssh2';
import ssh2 from 'ssh2';

// ssh2 is CommonJS: Node gives ESM only its default export.
const { utils } = ssh2;

import { z } from 'zod';

/** At most this many keys per lease (API.md, SSH). */
export const MAX_SSH_KEYS = 8;
/** Characters of one key line: an RSA key of 16384 bits takes about 2,800; comments are short. */
export const MAX_SSH_KEY_CHARS = 4096;

/** Key types a lease may carry: what OpenSSH's ssh-keygen makes without a hardware token. */
const KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
];
// `type base64 [comment]`, as in authorized_keys and *.pub files (no options field).
const KEY_LINE = /^([a-z0-9-]{1,32}) ([A-Za-z0-9+/]{16,4000}={0,3})(?: ([\x20-\x7e]{0,200}))?$/;

/**
 * Parses one public key in OpenSSH's one-line form (`ssh-ed25519 AAAA… comment`, a *.pub file's
 * line) with ssh2's key parser. Answers the parsed key, or a sentence saying what is wrong with it
 * (never the input itself). Private keys, unknown types and lines whose type word disagrees with
 * the key inside are refused.
 */
export function parseSshPublicKey(
  line: string,
): { ok: true; key: ParsedKey } | { ok: false; message: string } {
  if (line.length > MAX_SSH_KEY_CHARS) return { ok: false, message: 'key is too long' };
  const m = KEY_LINE.exec(line.trim());
  if (!m) return { ok: false, message: 'not an OpenSSH public key line ("ssh-ed25519 AAAA… comment")' };
  const type = m[1] ?? '';
  if (!KEY_TYPES.includes(type))
    return { ok: false, message: `key type must be one of ${KEY_TYPES.join(', ')}` };
  const parsed = utils.parseKey(`${type} ${m[2]}`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) return { ok: false, message: 'the key does not parse' };
  if (key.isPrivateKey()) return { ok: false, message: 'a private key; send the public one (*.pub)' };
  if (key.type !== type) return { ok: false, message: 'the key type does not match the key' };
  return { ok: true, key };
}

/**
 * The `ssh_keys` of a lease request: at most 8 OpenSSH public key lines, each checked with ssh2's
 * parser before any payment. (No transform, so the schema stays expressible as JSON Schema; the
 * lease service stores the lines trimmed.)
 */
export const sshKeysSchema = z
  .array(z.string().max(MAX_SSH_KEY_CHARS))
  .max(MAX_SSH_KEYS)
  .superRefine((keys, ctx) => {
    keys.forEach((line, i) => {
      const parsed = parseSshPublicKey(line);
      if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.message, path: [i] });
    });
  });
