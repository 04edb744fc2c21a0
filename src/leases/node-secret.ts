import {
  createHash,
  createHmac,
  createSecretKey,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { BearerSecret, LeaseId } from '../core/ids.js';
import type { Database } from '../store/database.js';

/**
 * A 32-byte secret kept in the data directory, outside the database. Everything a replayed paid
 * request must show again — the lease credential, the change and refund tokens — is derived from
 * it, so the store never holds any of them in clear and a stolen database reveals none.
 */
export class NodeSecret {
  /** The key as a KeyObject, made once: HMAC from a Buffer key imports the key on every call. */
  private readonly hmacKey: KeyObject;

  private constructor(key: Buffer) {
    this.hmacKey = createSecretKey(key);
  }

  static loadOrCreate(path: string, random: (n: number) => Buffer = randomBytes): NodeSecret {
    if (existsSync(path)) {
      const key = readFileSync(path);
      if (key.length !== 32) throw new Error(`${path} must hold exactly 32 bytes`);
      return new NodeSecret(key);
    }
    const key = random(32);
    writeFileSync(path, key, { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
    return new NodeSecret(key);
  }

  static fromBytes(key: Uint8Array): NodeSecret {
    if (key.length !== 32) throw new Error('node secret must be 32 bytes');
    return new NodeSecret(Buffer.from(key));
  }

  /** 256-bit bearer credential of a lease, base64url. */
  credentialFor(leaseId: LeaseId): BearerSecret {
    return this.derive('lease-credential', leaseId).toString('base64url') as BearerSecret;
  }

  /** 32 bytes of key material for one purpose, e.g. the secrets of a change token. */
  derive(purpose: string, subject: string): Buffer {
    return createHmac('sha256', this.hmacKey).update(`alacarte/${purpose}/${subject}`).digest();
  }
}

/** What the store keeps of a credential. */
export function credentialHash(credential: string): string {
  return createHash('sha256').update(credential, 'utf8').digest('hex');
}

/** Constant-time check of a presented credential against the stored hash. */
export function credentialMatches(presented: string, storedHash: string): boolean {
  const a = Buffer.from(credentialHash(presented), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Checks that `secret` (this data directory's `node.key`) is the one every node on `db` uses: the
 * first node records a value derived from it (node_identity, never the key itself), and a node
 * with another key is refused at start. A replica whose key was not copied from the first one
 * would issue credentials the others do not accept, and answer retries of payments made through
 * them as conflicts. Throws with what to do (README "Several replicas behind a load balancer").
 */
export async function requireStoreNodeKey(db: Database, secret: NodeSecret, keyPath: string): Promise<void> {
  const value = secret.derive('store-identity', 'node-key').toString('hex');
  await db
    .insertInto('node_identity')
    .values({ name: 'node-key', value })
    .onConflict((c) => c.column('name').doNothing())
    .execute();
  const row = await db
    .selectFrom('node_identity')
    .select('value')
    .where('name', '=', 'node-key')
    .executeTakeFirstOrThrow();
  if (row.value !== value)
    throw new Error(
      `${keyPath} is not the node key the other nodes of this store use: a replica needs the first replica's node.key and mint.seed, copied as files from its data directory (README, "Several replicas behind a load balancer")`,
    );
}
