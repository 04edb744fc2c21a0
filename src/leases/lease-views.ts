import type { LeaseId } from '../core/ids.js';
import * as lifecycle from '../core/lease.js';
import type { Database } from '../store/database.js';
import { type LeaseRow, leaseFromRow } from './lease-record.js';
import type { SshEndpoint } from './lease-service.js';

export interface LeaseViewsOptions {
  db: Database;
  clock: () => Date;
  /** The node's SSH server, once known; none: no `ssh` field. */
  ssh: () => SshEndpoint | undefined;
  /** The public URL of a lease's declared port (LeaseServiceOptions.portUrl); none: the driver's. */
  portUrl: ((leaseId: LeaseId, port: number) => string) | undefined;
}

/** Leases as answers show them (API.md "Leases"), and the store reads behind them. */
export class LeaseViews {
  private readonly db: Database;
  private readonly now: () => Date;
  private readonly ssh: () => SshEndpoint | undefined;
  private readonly portUrl: ((leaseId: LeaseId, port: number) => string) | undefined;

  constructor(options: LeaseViewsOptions) {
    this.db = options.db;
    this.now = options.clock;
    this.ssh = options.ssh;
    this.portUrl = options.portUrl;
  }

  /** A running lease's deadline, for its notices; undefined once it has ended. */
  async runningDeadline(id: string): Promise<Date | undefined> {
    const row = await this.db.selectFrom('leases').selectAll().where('id', '=', id).executeTakeFirst();
    if (row?.state !== 'running' || row.expires_at === null) return undefined;
    return new Date(Number(row.expires_at));
  }

  /** The `ports` map of a lease answer: port -> public URL (API.md keeps its shape). */
  publicPorts(row: LeaseRow): Record<string, string> {
    const stored = JSON.parse(row.ports_json) as Record<string, string>;
    if (!this.portUrl) return stored;
    const out: Record<string, string> = {};
    for (const port of Object.keys(stored)) out[port] = this.portUrl(row.id as LeaseId, Number(port));
    return out;
  }

  /** A lease's answer body (GET /v1/leases/{id}): its state, deadline, what was paid, ports and SSH login. */
  async leaseBody(row: LeaseRow): Promise<Record<string, unknown>> {
    const payments = await this.db
      .selectFrom('payments')
      .select(['amount'])
      .where('lease_id', '=', row.id)
      .execute();
    const now = this.now();
    const lease = leaseFromRow(row);
    return {
      id: row.id,
      state: row.state,
      offer: row.offer_id,
      image: row.image,
      created_at: iso(row.created_at),
      expires_at: row.expires_at === null ? null : iso(row.expires_at),
      paid: payments.reduce((sum, p) => sum + Number(p.amount), 0),
      unit: row.unit,
      ports: this.publicPorts(row),
      remaining_seconds: lifecycle.remainingSeconds(lease.state, now),
      ...this.sshBody(row.id),
    };
  }

  /** The `ssh` field of a lease's answers: where to log in, as the lease's id; empty without SSH. */
  sshBody(id: string): { ssh?: { host: string; port: number; user: string } } {
    const endpoint = this.ssh();
    return endpoint ? { ssh: { host: endpoint.host, port: endpoint.port, user: id } } : {};
  }

  /** How many leases are in each state (every state named, zero or more), for metrics. */
  async countByState(): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('leases')
      .select(['state', ({ fn }) => fn.countAll<number>().as('n')])
      .groupBy('state')
      .execute();
    const counts: Record<string, number> = Object.fromEntries(lifecycle.LEASE_STATES.map((s) => [s, 0]));
    for (const r of rows) counts[r.state] = Number(r.n);
    return counts;
  }
}

function iso(ms: number | bigint): string {
  return new Date(Number(ms)).toISOString();
}
