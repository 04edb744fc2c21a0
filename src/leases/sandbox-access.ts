import { AlacarteError } from '../core/errors.js';
import { type LeaseId, parseLeaseId } from '../core/ids.js';
import type { Offer } from '../core/offers.js';
import type {
  AttachSession,
  ComputeDriver,
  SandboxProcess,
  TerminalSize,
} from '../drivers/compute-driver.js';
import type { Database } from '../store/database.js';
import type { Answer } from './answer.js';
import { cappedText } from './capped-text.js';
import type { LeaseAccess } from './lease-access.js';
import { PerLeaseLimit } from './per-lease-limit.js';
import { isGone, type Reconciler } from './reconciler.js';

export interface SandboxAccessOptions {
  db: Database;
  driver: ComputeDriver;
  offers: readonly Offer[];
  /** Cap of exec's stdout and of its stderr, each, in bytes. */
  maxOutputBytes: number;
  access: LeaseAccess;
  /** The service's reconciler (read late: it is made after this). */
  reconciler: () => Reconciler;
}

/**
 * A running lease's sandbox, for its renter: commands (exec), terminals (attach), processes for
 * file transfers and its declared ports, each bounded per lease; a sandbox found gone ends its
 * lease (refunded) through the reconciler.
 */
export class SandboxAccess {
  private readonly db: Database;
  private readonly driver: ComputeDriver;
  private readonly offers: readonly Offer[];
  private readonly execs = new PerLeaseLimit(8, 'commands');
  private readonly terminals = new PerLeaseLimit(4, 'terminals');
  private readonly transfers = new PerLeaseLimit(4, 'file transfers');
  private readonly maxOutputBytes: number;
  private readonly authorize: LeaseAccess['authorize'];
  private readonly requireRunning: LeaseAccess['requireRunning'];
  private readonly requireHere: LeaseAccess['requireHere'];
  private readonly reconcilerOf: () => Reconciler;

  constructor(options: SandboxAccessOptions) {
    this.db = options.db;
    this.driver = options.driver;
    this.offers = options.offers;
    this.maxOutputBytes = options.maxOutputBytes;
    const access = options.access;
    this.authorize = (id, credential) => access.authorize(id, credential);
    this.requireRunning = (row) => access.requireRunning(row);
    this.requireHere = (row) => access.requireHere(row);
    this.reconcilerOf = options.reconciler;
  }

  private get reconciler(): Reconciler {
    return this.reconcilerOf();
  }

  /**
   * POST /v1/leases/{id}/exec: runs a command in the sandbox (API.md); the answer's slot is held
   * until `delivered` settles. Throws `unauthorized`, `lease_not_running`, `lease_elsewhere`,
   * `rate_limited` (too many at once).
   */
  async exec(
    id: string,
    credential: string | undefined,
    request: {
      command: string[];
      /** Text (sent as UTF-8) or bytes. */
      stdin?: string | Uint8Array;
      /** How stdout and stderr are answered: text, or the bytes unchanged as base64. */
      encoding?: 'utf8' | 'base64';
      timeoutSeconds: number;
      /** Start detached and answer at once; output discarded. */
      background?: boolean;
      /** Aborted when the client has gone: the command is killed then (not a background one). */
      signal?: AbortSignal;
    },
    delivered?: Promise<unknown>,
  ): Promise<Answer> {
    const encoding = request.encoding ?? 'utf8';
    const row = await this.authorize(id, credential);
    this.requireRunning(row);
    this.requireHere(row);
    const release = this.execs.take(row.id);
    const result = await this.driver
      .exec(
        { leaseId: row.id },
        {
          command: request.command,
          stdin: request.stdin,
          timeoutMs: request.timeoutSeconds * 1000,
          maxOutputBytes: this.maxOutputBytes,
          background: request.background,
          ...(request.background ? {} : { signal: request.signal }),
        },
      )
      .catch(async (err: unknown) => {
        release();
        if (isGone(err)) await this.reconciler.endVanished(row.id);
        throw err;
      });
    // The answer (up to twice maxOutputBytes, several times that as JSON) stays in the node's memory
    // until its client has read it: the slot is held until then, so a client that never reads holds
    // at most the per-lease number of answers, instead of one more per request (issue 9, section 3).
    if (delivered) void delivered.then(release, release);
    else release();
    // A stream was cut when the exec was and it holds the cap's worth (each stream is capped).
    const text = (b: Buffer) =>
      encoding === 'base64'
        ? b.toString('base64')
        : cappedText(b, result.truncated && b.length >= this.maxOutputBytes);
    if (request.background && result.pid !== undefined) {
      return { status: 202, headers: {}, body: { started: true, pid: result.pid } };
    }
    return {
      status: 200,
      headers: {},
      body: {
        exit_code: result.exitCode,
        stdout: text(result.stdout),
        stderr: text(result.stderr),
        truncated: result.truncated,
        // Said only when asked for, so that utf8 answers stay as they were.
        ...(encoding === 'base64' ? { encoding } : {}),
        // A background command that could not start answers like a finished exec, saying so.
        ...(request.background ? { started: false } : {}),
      },
    };
  }

  /** Checks the credential and that the lease runs, before a WebSocket is accepted. */
  async authorizeAttach(id: string, credential: string | undefined): Promise<LeaseId> {
    const row = await this.authorize(id, credential);
    this.requireRunning(row);
    this.requireHere(row);
    return row.id as LeaseId;
  }

  /** Whether the lease has ended (stopped, expired, failed, or past its deadline), read from the store. */
  async hasEnded(leaseId: LeaseId): Promise<boolean> {
    const row = await this.db.selectFrom('leases').selectAll().where('id', '=', leaseId).executeTakeFirst();
    if (!row) return true;
    try {
      this.requireRunning(row);
      return false;
    } catch {
      return true;
    }
  }

  /** An interactive shell on a terminal in the lease's sandbox (call authorizeAttach first). */
  async attach(leaseId: LeaseId, size: TerminalSize): Promise<AttachSession> {
    const release = this.terminals.take(leaseId);
    try {
      const session = await this.driver.attach({ leaseId }, size);
      session.exited.finally(release).catch(() => undefined);
      return session;
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Checks the credential and that the lease runs, for the files API (src/files/); returns the
   * lease's disk (its offer's disk_mib), which bounds a transfer.
   */
  async authorizeFiles(
    id: string,
    credential: string | undefined,
  ): Promise<{ leaseId: LeaseId; diskMib: number }> {
    const row = await this.authorize(id, credential);
    this.requireRunning(row);
    this.requireHere(row);
    const offer = this.offers.find((o) => o.id === row.offer_id);
    // An offer the operator has since removed: the largest disk any offer sells.
    const diskMib = offer?.diskMib ?? Math.max(...this.offers.map((o) => o.diskMib));
    return { leaseId: row.id as LeaseId, diskMib };
  }

  /**
   * A process in the lease's sandbox for a file transfer (call authorizeFiles first); at most 4 at
   * once per lease, each released when its process has exited.
   */
  async spawnForFiles(leaseId: LeaseId, command: string[]): Promise<SandboxProcess> {
    const release = this.transfers.take(leaseId);
    try {
      const process = await this.driver.spawn({ leaseId }, { command });
      process.exited.finally(release).catch(() => undefined);
      return process;
    } catch (err) {
      release();
      if (isGone(err)) await this.reconciler.endVanished(leaseId);
      throw err;
    }
  }

  /** Whether the lease's sandbox still runs (read from the host, cheap). */
  sandboxRunning(leaseId: LeaseId): Promise<boolean> {
    return this.driver.isRunning({ leaseId });
  }

  /**
   * Where the node relays a lease's declared port: the driver's URL of it (on the node's loopback),
   * this replica's own relay on a shared target (ComputeDriver.relayPort: a lease created through
   * another replica is served here at once), else the URL its start gave. No credential: a lease's
   * ports are public, like a server's (README, "Port URLs"). Throws `not_found` for an unknown
   * lease or a port it did not declare, `lease_not_running` once it has ended.
   */
  async portTarget(id: string, port: number): Promise<string> {
    const leaseId = parseLeaseId(id);
    const row = leaseId
      ? await this.db.selectFrom('leases').selectAll().where('id', '=', leaseId).executeTakeFirst()
      : undefined;
    if (!row) throw new AlacarteError('not_found', 'no such lease');
    this.requireRunning(row);
    this.requireHere(row);
    const target = (JSON.parse(row.ports_json) as Record<string, string>)[String(port)];
    if (!target) throw new AlacarteError('not_found', `the lease does not expose port ${port}`);
    if (!this.driver.relayPort) return target;
    try {
      return (await this.driver.relayPort({ leaseId: row.id }, port)) ?? target;
    } catch (err) {
      if (isGone(err)) await this.reconciler.endVanished(row.id);
      throw err;
    }
  }
}
