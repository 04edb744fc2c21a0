import { closeSync, fsync, openSync } from 'node:fs';
import type SQLite from 'better-sqlite3';

/**
 * A SQLite commit made durable off the node's thread. With `synchronous = FULL` a WAL-mode COMMIT
 * calls fsync(2) on the write-ahead log before it returns, on the thread that runs it: the node's,
 * where every request waits behind it. On ext4 that fsync also commits the file system's journal,
 * so under a churn of sandbox directories on the same disk it cost several ms each (bench/PROFILES.md).
 *
 * Here the COMMIT runs with `synchronous = NORMAL` (it writes the log, no fsync) and the log is then
 * fsync'ed in libuv's pool; the caller answers nobody before that returns. What the callers are
 * told is therefore exactly as durable as with FULL: the frames of the COMMIT are in the log file
 * (page cache) when fsync starts, and fsync(2) of the file flushes them whatever descriptor it is
 * called on. SQLite's own guarantees under NORMAL (no corruption on power loss: the log is synced
 * before each checkpoint and its header when it is reused) are unchanged. A process crash between
 * the COMMIT and the fsync loses nothing (the kernel holds the pages); a power loss then loses only
 * a commit no caller was told about, as with FULL a power loss during the COMMIT would.
 *
 * Only the connection's transactions run through relaxed() are: the pragma is set with the
 * connection held and no transaction open (SQLite refuses it inside one), and set back before it is
 * released, so every other transaction keeps FULL.
 */
export class WalSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  /** `sqlite`: the node's connection to a database file in WAL mode (its log is `<file>-wal`). */
  constructor(private readonly sqlite: SQLite.Database) {}

  /**
   * For a store that is a file (not `:memory:`, not read-only: in memory nothing is durable anyway)
   * in WAL mode (in a rollback-journal mode NORMAL would make no log to sync): else undefined, and
   * its commits keep their fsync.
   */
  static for(sqlite: SQLite.Database): WalSync | undefined {
    if (sqlite.memory || sqlite.name === '' || sqlite.readonly) return undefined;
    if (String(sqlite.pragma('journal_mode', { simple: true })).toLowerCase() !== 'wal') return undefined;
    return new WalSync(sqlite);
  }

  /**
   * Runs `transaction` (BEGIN … COMMIT on this connection, which the caller holds and which has no
   * transaction open) with `synchronous = NORMAL`, FULL set back after it whatever its outcome.
   * Its COMMIT is not durable until sync() resolves: tell nobody before.
   */
  async relaxed<T>(transaction: () => Promise<T>): Promise<T> {
    // exec, not a statement prepared once: SQLite applies this pragma when it compiles it, so a
    // kept statement run again changes nothing.
    this.sqlite.exec('PRAGMA synchronous = NORMAL');
    try {
      return await transaction();
    } finally {
      this.sqlite.exec('PRAGMA synchronous = FULL');
    }
  }

  /**
   * Resolves once everything written to the log before this call is on disk; rejects with
   * fsync(2)'s error (what was committed is then visible but not known durable: the caller must
   * not say it succeeded). Calls while an
   * fsync runs share the next one (it may have started before their writes): at most one runs and
   * one waits, whatever the number of callers.
   */
  sync(): Promise<void> {
    if (this.next) return this.next;
    if (this.running) {
      this.next = this.running
        .catch(() => undefined)
        .then(() => {
          this.next = undefined;
          return this.sync();
        });
      return this.next;
    }
    this.running = this.fsyncLog().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** fsync(2) of the log, in libuv's pool. */
  protected fsyncLog(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let fd: number;
      try {
        // Opened per sync (a few µs, here: one hop to the pool is enough): a descriptor kept open
        // would outlive the connection, and would sync nothing should the log be replaced.
        fd = openSync(`${this.sqlite.name}-wal`, 'r');
      } catch (err) {
        reject(err);
        return;
      }
      fsync(fd, (err) => {
        closeSync(fd);
        if (err) reject(err);
        else resolve();
      });
    });
  }
}
