import {
  type DatabaseConnection,
  type Driver,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
} from 'kysely';

/**
 * Kysely's SQLite driver with its one connection handed to waiters in arrival order, one at a
 * time. Kysely's own lock wakes every waiter on each release and all but one wait again: with a
 * burst's hundred queries waiting behind a transaction, that is thousands of wake-ups on the node's
 * thread (a tenth of its samples in a profiled burst), for the same order of service.
 */
class QueuedSqliteDriver extends SqliteDriver {
  private held = false;
  private readonly waiting: Array<() => void> = [];

  override async acquireConnection(): Promise<DatabaseConnection> {
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.held = true;
    // Kysely's own lock, never contended now: only the holder gets here.
    return super.acquireConnection();
  }

  override async releaseConnection(): Promise<void> {
    await super.releaseConnection();
    const next = this.waiting.shift();
    // Handed over while still held, so that no newcomer slips in ahead of the queue.
    if (next) next();
    else this.held = false;
  }
}

/** SqliteDialect whose driver serves its connection in arrival order (QueuedSqliteDriver). */
export class QueuedSqliteDialect extends SqliteDialect {
  private readonly driverConfig: SqliteDialectConfig;

  constructor(config: SqliteDialectConfig) {
    super(config);
    this.driverConfig = config;
  }

  override createDriver(): Driver {
    return new QueuedSqliteDriver(this.driverConfig);
  }
}
