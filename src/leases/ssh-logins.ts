import { parseLeaseId } from '../core/ids.js';
import type { Database } from '../store/database.js';
import { credentialMatches } from './node-secret.js';

/**
 * A login the SSH server may grant: the lease's own id, still running, before its deadline (on
 * this replica or, to be told so, another one).
 */
export interface SshLease {
  leaseId: string;
  /** OpenSSH public key lines from the lease request (`ssh_keys`). */
  keys: string[];
}

/**
 * What the SSH server asks the store about leases (ssh/): who may log in, and which leases still
 * run. Only running leases before their deadline answer; an unknown, ended or expired lease looks
 * the same as no lease at all, so a login attempt learns nothing from the answer.
 */
export class SshLogins {
  constructor(
    private readonly db: Database,
    private readonly now: () => Date = () => new Date(),
    /**
     * Whether this replica holds a lease's sandbox (compute-target.ts): a lease another replica
     * holds with crun logs in here (its key or credential proves the caller holds it), to be told
     * where it runs (`elsewhere`), and is never running() here.
     */
    private readonly here: (row: { target: string }) => boolean = () => true,
  ) {}

  /** The running lease named by an SSH user name, or undefined. */
  async lease(user: string): Promise<SshLease | undefined> {
    const id = parseLeaseId(user);
    if (!id) return undefined;
    const row = await this.db
      .selectFrom('leases')
      .select(['id', 'state', 'expires_at', 'ssh_keys_json', 'target'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row || !this.live(row)) return undefined;
    return { leaseId: row.id, keys: parseKeys(row.ssh_keys_json) };
  }

  /** Whether lease `leaseId`'s sandbox is another replica's (so nothing of it can run here). */
  async elsewhere(leaseId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('leases')
      .select('target')
      .where('id', '=', leaseId)
      .executeTakeFirst();
    return row !== undefined && !this.here(row);
  }

  /**
   * Whether `password` is the bearer credential of lease `user`, compared in constant time with
   * the stored hash (as the HTTP layer checks Bearer); false for any lease that is not running.
   */
  async passwordMatches(user: string, password: string): Promise<boolean> {
    const id = parseLeaseId(user);
    const row = id
      ? await this.db
          .selectFrom('leases')
          .select(['state', 'expires_at', 'credential_hash', 'target'])
          .where('id', '=', id)
          .executeTakeFirst()
      : undefined;
    // Compared even for an unknown lease, so timing does not tell which leases exist.
    const ok = credentialMatches(password, row?.credential_hash ?? '0'.repeat(64));
    return ok && row !== undefined && this.live(row);
  }

  /** Of `ids`, those whose leases still run before their deadline (at most 1000 asked at once). */
  async running(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db
      .selectFrom('leases')
      .select(['id', 'state', 'expires_at', 'target'])
      .where('id', 'in', ids.slice(0, 1000))
      .execute();
    return new Set(rows.filter((r) => this.live(r) && this.here(r)).map((r) => r.id));
  }

  private live(row: { state: string; expires_at: number | null }): boolean {
    return row.state === 'running' && Number(row.expires_at) > this.now().getTime();
  }
}

function parseKeys(json: string): string[] {
  const parsed: unknown = JSON.parse(json);
  return Array.isArray(parsed) ? parsed.filter((k): k is string => typeof k === 'string') : [];
}
