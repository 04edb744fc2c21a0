import { AlacarteError } from '../core/errors.js';
import { parseLeaseId } from '../core/ids.js';
import type { Database } from '../store/database.js';
import type { LeaseRow } from './lease-record.js';
import { credentialHash, credentialMatches } from './node-secret.js';
import type { Reconciler } from './reconciler.js';
import { requireRunning } from './request-checks.js';

// A real-looking hash to compare against when the lease id is unknown, so a probe cannot tell
// "no such lease" from "wrong credential" by timing.
const DUMMY_HASH = credentialHash('alacarte/no-such-lease');

export interface LeaseAccessOptions {
  db: Database;
  clock: () => Date;
  /** The service's reconciler (read late: it is made after this), which knows where a sandbox is. */
  reconciler: () => Reconciler;
}

/**
 * Who may act on a lease, and where: its credential (compared in constant time, the same for an
 * unknown lease), that it runs, and that its sandbox is on this replica.
 */
export class LeaseAccess {
  private readonly db: Database;
  private readonly now: () => Date;
  private readonly reconcilerOf: () => Reconciler;

  constructor(options: LeaseAccessOptions) {
    this.db = options.db;
    this.now = options.clock;
    this.reconcilerOf = options.reconciler;
  }

  private get reconciler(): Reconciler {
    return this.reconcilerOf();
  }

  /**
   * The lease's row, once `credential` is its credential; AlacarteError `unauthorized` for a
   * malformed or unknown id and for a missing or wrong credential alike.
   */
  async authorize(id: string, credential: string | undefined): Promise<LeaseRow> {
    const leaseId = parseLeaseId(id);
    const row = leaseId
      ? await this.db.selectFrom('leases').selectAll().where('id', '=', leaseId).executeTakeFirst()
      : undefined;
    const ok = credentialMatches(credential ?? '', row?.credential_hash ?? DUMMY_HASH);
    if (!row || !ok || credential === undefined)
      throw new AlacarteError('unauthorized', 'missing or wrong lease credential');
    return row;
  }

  /** Throws AlacarteError `lease_not_running` (409) unless the lease runs (request-checks.ts). */
  requireRunning(row: LeaseRow): void {
    requireRunning(row, this.now());
  }

  /**
   * The lease's sandbox must be reachable from this replica: with sandboxes local to each replica
   * (crun), exec, attach, files and ports are served only by the replica holding it. Elsewhere:
   * 421 `lease_elsewhere` (RFC 9110 "Misdirected Request"), nothing touched; README "Scaling out".
   */
  requireHere(row: LeaseRow): void {
    if (this.reconciler.holds(row)) return;
    throw new AlacarteError(
      'lease_elsewhere',
      'this lease runs on another replica of this node, which serves its commands, terminals, files and ports; extend and stop work through any',
    );
  }
}
