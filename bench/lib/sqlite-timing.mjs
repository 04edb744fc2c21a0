// Timing SQLite for the bench scripts: better-sqlite3 runs each statement synchronously on the
// node's thread, so a statement's wall time is that thread's time.
import { performance } from 'node:perf_hooks';
import SQLite from 'better-sqlite3';

/**
 * Wraps better-sqlite3's Statement run/get/all (on the prototype: every database this process
 * opens, the node's included) so that each call reports how long it took. A statement counts as a
 * commit when its SQL matches `commitStatement`, or when it is a write (INSERT/UPDATE/DELETE run)
 * outside a transaction, which SQLite commits on its own.
 * @param {RegExp} commitStatement the SQL of the statements that commit, e.g. /^\s*commit/i
 * @param {(ms: number, commit: boolean) => void} onStatement called after each statement, with its
 *   time in ms (performance.now(), so fractions) and whether it committed
 */
export function timeSqliteStatements(commitStatement, onStatement) {
  const probe = new SQLite(':memory:');
  const Statement = Object.getPrototypeOf(probe.prepare('SELECT 1'));
  probe.close();
  for (const method of ['run', 'get', 'all']) {
    const original = Statement[method];
    Statement[method] = function timed(...args) {
      const t0 = performance.now();
      try {
        return original.apply(this, args);
      } finally {
        const took = performance.now() - t0;
        onStatement(
          took,
          commitStatement.test(this.source) ||
            (method === 'run' &&
              this.database.inTransaction === false &&
              /^\s*(insert|update|delete)/i.test(this.source)),
        );
      }
    };
  }
}
