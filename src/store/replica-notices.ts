import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { StoreUnavailableError } from './database.js';

/**
 * The channels replicas tell each other on. `alacarte_leases`: a lease id whose state or deadline
 * changed on another replica (its sandbox's holder acts on it); `alacarte_lease_synced`: the
 * holder's answer once the sandbox follows the store (`<lease id> <deadline, ms>` or `<lease id>
 * ended`); `alacarte_mint`: a mint change (NUT-17 notifications, keyset rotation;
 * src/mint/replica-events.ts).
 */
export type NoticeChannel = 'alacarte_leases' | 'alacarte_lease_synced' | 'alacarte_mint';

/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; ours stay well below, sender id included. */
export const MAX_NOTICE_BYTES = 7000;

/**
 * Short messages between the replicas sharing a store: PostgreSQL LISTEN/NOTIFY. A notice is a
 * hint to re-read the store, never the truth itself (a replica that was down or disconnected
 * misses it; `onReconnect` tells the listener to look again). SQLite, one process: no replicas, so
 * publishing does nothing.
 */
export interface ReplicaNotices {
  /** Whether other replicas can hear anything (false on SQLite). */
  readonly shared: boolean;
  /** Sends `payload` (at most MAX_NOTICE_BYTES) to every other replica listening on `channel`. */
  publish(channel: NoticeChannel, payload: string): Promise<void>;
  /**
   * Calls `onNotice` with each payload other replicas publish on `channel`, and `onReconnect` after
   * the listening connection came back (notices may have been missed meanwhile). Returns the
   * function that stops it.
   */
  listen(channel: NoticeChannel, onNotice: (payload: string) => void, onReconnect?: () => void): () => void;
  /**
   * Resolves once the listening connection is up (and, once announced, its first try at the
   * presence lock is over), or its first attempt failed (then retried).
   */
  ready(): Promise<void>;
  /**
   * Says from now on that this replica is up and hears `alacarte_leases` (call once it listens
   * there): its listening connection holds the replica's presence lock, taken again after every
   * reconnection. Nothing where nothing is shared.
   */
  announce(): void;
  /**
   * Whether replica `replica` (a `rep_…` id) is up and hearing notices: its listening connection
   * holds that replica's presence lock. Always true where nothing is shared (SQLite). Rejects with
   * StoreUnavailableError when the store does not answer.
   */
  isPresent(replica: string): Promise<boolean>;
  /** Stops listening and closes the listening connection. */
  close(): Promise<void>;
}

/** For a store no other process shares (SQLite). */
export const LOCAL_NOTICES: ReplicaNotices = {
  shared: false,
  publish: async () => {},
  listen: () => () => {},
  ready: async () => {},
  announce: () => {},
  isPresent: async () => true,
  close: async () => {},
};

/**
 * The session-level advisory lock that says a replica is up (PostgreSQL "Advisory Locks"): its
 * 64-bit key is the replica id's 16 hex digits, as a signed bigint. `pg_locks` shows such a lock as
 * `classid` (the key's high 32 bits), `objid` (its low 32 bits) and `objsubid` 1.
 */
export function presenceKey(replica: string): { key: string; classid: number; objid: number } {
  const hex = /^rep_([0-9a-f]{16})$/.exec(replica)?.[1];
  if (!hex) throw new Error(`not a replica id: ${replica}`);
  const unsigned = BigInt(`0x${hex}`);
  return {
    key: BigInt.asIntN(64, unsigned).toString(),
    classid: Number(unsigned >> 32n),
    objid: Number(unsigned & 0xffffffffn),
  };
}

interface Listener {
  onNotice: (payload: string) => void;
  onReconnect?: () => void;
}

/** Reconnect delays of the listening connection, ms: doubled from the first to the last. */
const RECONNECT_MS = { first: 250, last: 10_000 };

/**
 * ReplicaNotices over PostgreSQL: NOTIFY through the store's pool, LISTEN on one connection of its
 * own (a pooled connection would lose its LISTEN when given back), reconnected with a bounded
 * backoff when it drops. Each payload carries this process's random sender id, so a replica does
 * not act on its own notices.
 */
export class PostgresNotices implements ReplicaNotices {
  readonly shared = true;
  private readonly sender = randomBytes(8).toString('hex');
  private readonly listeners = new Map<NoticeChannel, Set<Listener>>();
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private delay = RECONNECT_MS.first;
  private closed = false;
  /** announce() was called: the listening connection holds the presence lock (or keeps trying). */
  private announced = false;
  private lockTimer: NodeJS.Timeout | undefined;
  /** The listening connection's statements, one at a time (pg deprecates sending one while another runs). */
  private statements: Promise<unknown> = Promise.resolve();
  /** announce()'s first try at the presence lock on the connection it found (never rejects). */
  private presenceTry: Promise<void> | undefined;

  /**
   * @param pool the store's pool (NOTIFY goes through it)
   * @param connect a fresh connection to the same database, for LISTEN
   * @param onError told (without the URL) when the listening connection fails; it is retried
   * @param replica this replica's id: once announced, its listening connection holds the replica's
   *   presence lock (presenceKey), so that the others see it up while it hears their notices (a
   *   connection cut without a word is held by the server until its TCP keepalive gives up: set
   *   to about a minute on that connection)
   */
  constructor(
    private readonly pool: pg.Pool,
    private readonly connect: () => pg.Client,
    private readonly onError: (message: string) => void = () => {},
    private readonly replica?: string,
  ) {}

  async publish(channel: NoticeChannel, payload: string): Promise<void> {
    const text = `${this.sender} ${payload}`;
    if (Buffer.byteLength(text) > MAX_NOTICE_BYTES) throw new Error(`notice of ${text.length} bytes`);
    await this.pool.query('select pg_notify($1, $2)', [channel, text]);
  }

  listen(channel: NoticeChannel, onNotice: (payload: string) => void, onReconnect?: () => void): () => void {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      const client = this.client;
      if (client) void this.serial(() => client.query(`LISTEN ${channel}`)).catch(() => this.reconnect());
    }
    const listener: Listener = { onNotice, ...(onReconnect ? { onReconnect } : {}) };
    set.add(listener);
    if (!this.client && !this.connecting) this.connecting = this.open(false);
    return () => {
      set.delete(listener);
    };
  }

  /** Runs `statement` on the listening connection once the statements sent before it are done. */
  private serial<T>(statement: () => Promise<T>): Promise<T> {
    const next = this.statements.then(statement, statement);
    this.statements = next.catch(() => undefined);
    return next;
  }

  async ready(): Promise<void> {
    await this.connecting;
    await this.presenceTry;
  }

  async isPresent(replica: string): Promise<boolean> {
    const { classid, objid } = presenceKey(replica);
    const found = await this.pool
      .query(
        `select 1 from pg_locks where locktype = 'advisory' and granted and objsubid = 1
           and classid = $1 and objid = $2
           and database = (select oid from pg_database where datname = current_database())`,
        [classid, objid],
      )
      .catch((err: unknown) => {
        throw new StoreUnavailableError(err);
      });
    return (found.rowCount ?? 0) > 0;
  }

  announce(): void {
    if (!this.replica || this.announced) return;
    this.announced = true;
    if (this.client) this.presenceTry = this.takePresence(this.client);
  }

  /**
   * Takes the presence lock on the listening connection `client`; while another session holds it
   * (our own cut connection the server has not seen go yet, or a copy of this replica.id), says so
   * and tries again, listening all the while.
   */
  private async takePresence(client: pg.Client): Promise<void> {
    if (!this.replica || this.client !== client) return;
    const { key } = presenceKey(this.replica);
    const taken = await this.serial(() =>
      client.query('select pg_try_advisory_lock($1::bigint) as ok', [key]),
    )
      .then((r) => r.rows[0]?.ok === true)
      .catch(() => undefined);
    if (taken !== false || this.closed || this.client !== client) return;
    this.onError(
      `another session holds replica ${this.replica}'s presence (a copy of its replica.id, or this replica's own connection before a cut); retrying`,
    );
    if (this.lockTimer) clearTimeout(this.lockTimer);
    this.lockTimer = setTimeout(() => void this.takePresence(client), RECONNECT_MS.last);
    this.lockTimer.unref();
  }

  private async open(again: boolean): Promise<void> {
    const client = this.connect();
    client.on('error', (err) => {
      this.onError(`replica notices: ${err.message}`);
      this.reconnect();
    });
    client.on('end', () => this.reconnect());
    client.on('notification', (msg) => {
      const set = this.listeners.get(msg.channel as NoticeChannel);
      const text = msg.payload ?? '';
      const space = text.indexOf(' ');
      if (!set || space < 0 || text.slice(0, space) === this.sender) return;
      const payload = text.slice(space + 1);
      for (const l of set) l.onNotice(payload);
    });
    try {
      await client.connect();
      if (this.closed) {
        await client.end().catch(() => {});
        return;
      }
      // The server ends this session (and so frees the presence lock) about a minute after its
      // peer stops answering, not at the system's default of hours. (Ignored over a Unix socket.)
      await this.serial(() =>
        client.query(
          'set tcp_keepalives_idle = 30; set tcp_keepalives_interval = 10; set tcp_keepalives_count = 3',
        ),
      );
      // Set first: a channel added from now on is listened to by listen() itself (twice is harmless).
      this.client = client;
      for (const channel of [...this.listeners.keys()])
        await this.serial(() => client.query(`LISTEN ${channel}`));
      // Held as long as this connection lives, taken once it listens again.
      if (this.announced) await this.takePresence(client);
      this.delay = RECONNECT_MS.first;
      if (again) for (const set of this.listeners.values()) for (const l of set) l.onReconnect?.();
    } catch (err) {
      this.onError(`replica notices: ${(err as Error).message}`);
      if (this.client === client) this.client = undefined;
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      this.schedule();
    } finally {
      this.connecting = undefined;
    }
  }

  private reconnect(): void {
    if (this.closed || !this.client) return;
    const old = this.client;
    this.client = undefined;
    old.removeAllListeners('end');
    void old.end().catch(() => {});
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed && !this.client && !this.connecting) this.connecting = this.open(true);
    }, this.delay);
    this.retryTimer.unref();
    this.delay = Math.min(this.delay * 2, RECONNECT_MS.last);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.lockTimer) clearTimeout(this.lockTimer);
    await this.connecting;
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
    }
  }
}

/** The notices of an open store: PostgreSQL's when it has a pool, else none (SQLite). */
export function replicaNotices(
  postgres: pg.Pool | undefined,
  onError?: (m: string) => void,
  replica?: string,
): ReplicaNotices {
  if (!postgres) return LOCAL_NOTICES;
  const options = postgres.options;
  return new PostgresNotices(
    postgres,
    () => new pg.Client({ connectionString: options.connectionString }),
    onError,
    replica,
  );
}
