import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSshPublicKey } from '../../../src/core/ssh-keys.js';
import { createLeaseBody } from '../../../src/http/lease-schemas.js';

const dir = mkdtempSync(join(tmpdir(), 'alacarte-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A key pair made by OpenSSH's own ssh-keygen, as a renter would. */
function keygen(type: string, bits?: number): { pub: string; priv: string } {
  const path = join(dir, `${type}-${bits ?? 0}`);
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...(bits ? ['-b', String(bits)] : []),
    '-N',
    '',
    '-C',
    'me@laptop',
    '-f',
    path,
  ]);
  return { pub: readFileSync(`${path}.pub`, 'utf8').trim(), priv: readFileSync(path, 'utf8') };
}

const ed25519 = keygen('ed25519');
const ecdsa = keygen('ecdsa', 256);
const rsa = keygen('rsa', 2048);

const body = (keys: unknown) =>
  createLeaseBody.safeParse({ offer: 'small', seconds: 60, image: 'busybox', ssh_keys: keys });

describe('ssh_keys of a lease request', () => {
  it('takes the public keys ssh-keygen makes (ed25519, ecdsa, rsa), comment and all', () => {
    for (const key of [ed25519.pub, ecdsa.pub, rsa.pub]) {
      const parsed = parseSshPublicKey(key);
      expect(parsed.ok, key).toBe(true);
    }
    const ok = body([ed25519.pub, `${rsa.pub}\n`]);
    expect(ok.success).toBe(true);
  });

  it('refuses what is not one public key line, saying why without echoing it', () => {
    const [type, blob] = ed25519.pub.split(' ') as [string, string];
    const rsaBlob = rsa.pub.split(' ')[1];
    const bad = [
      '',
      'ssh-ed25519',
      'ssh-ed25519 AAAAnotakeyatall',
      ed25519.priv,
      // An authorized_keys options field is not a key line.
      `command="rm -rf /" ${ed25519.pub}`,
      // Two keys in one entry.
      `${ed25519.pub}\n${ecdsa.pub}`,
      // The type word says one thing, the key another.
      `${type} ${rsaBlob}`,
      `ssh-dss ${blob}`,
      `${type} ${blob.slice(0, -4)}`,
      'x'.repeat(5000),
    ];
    for (const line of bad) {
      const r = body([line]);
      expect(r.success, line.slice(0, 60)).toBe(false);
      expect(JSON.stringify(r.error?.issues)).not.toContain(blob.slice(10, 40));
    }
  });

  it('takes at most 8 keys', () => {
    expect(body(Array(8).fill(ed25519.pub)).success).toBe(true);
    expect(body(Array(9).fill(ed25519.pub)).success).toBe(false);
    expect(body('ssh-ed25519 AAAA').success).toBe(false);
  });
});
