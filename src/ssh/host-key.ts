import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { ParsedKey } from 'ssh2';
import ssh2 from 'ssh2';

// ssh2 is CommonJS: Node gives ESM only its default export.
const { utils } = ssh2;

/** The node's SSH host key: private key (OpenSSH format) and its public fingerprint. */
export interface HostKey {
  /** OpenSSH private key text, as ssh2's Server takes it. */
  privateKey: string;
  /** `SHA256:<base64, no padding>` of the public key blob: what `ssh-keygen -lf` prints. */
  fingerprint: string;
  /** The public key line (`ssh-ed25519 AAAA…`), e.g. for a known_hosts file. */
  publicKey: string;
}

/**
 * Loads the host key from `path`, or makes an ed25519 key there first (mode 0600, made once with
 * an exclusive create so two starting nodes cannot each write their own). The key stays across
 * restarts, so clients that trusted the node once keep trusting it. Throws when the file exists but
 * holds no usable private key.
 */
export function loadOrCreateHostKey(path: string): HostKey {
  if (!existsSync(path)) {
    try {
      writeFileSync(path, newHostKey(), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // Another process made it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  chmodSync(path, 0o600);
  const privateKey = readFileSync(path, 'utf8');
  const key = privateKeyOf(privateKey);
  if (!key) throw new Error(`${path} does not hold an SSH private key`);
  const blob = key.getPublicSSH();
  return {
    privateKey,
    fingerprint: fingerprintOf(blob),
    publicKey: `${key.type} ${blob.toString('base64')}`,
  };
}

/** The private key in OpenSSH text, or undefined when ssh2 cannot read one there. */
function privateKeyOf(text: string): ParsedKey | undefined {
  const parsed = utils.parseKey(text);
  const key: ParsedKey | Error | undefined = Array.isArray(parsed) ? parsed[0] : parsed;
  return key && !(key instanceof Error) && key.isPrivateKey() ? key : undefined;
}

/**
 * A new ed25519 host key in OpenSSH text. ssh2 1.17's generateKeyPairSync drops a leading zero byte
 * of the public key (about 1 key in 300 comes out 31 bytes long, which ssh2 itself then refuses as
 * malformed), so a key is only taken once it reads back.
 */
function newHostKey(): string {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment: 'alacarte host key' });
    if (privateKeyOf(pair.private)) return pair.private;
  }
  throw new Error('could not make an SSH host key');
}

/** OpenSSH's SHA256 fingerprint of a public key blob (the wire encoding). */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
