import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Database } from '../../src/store/database.js';
import { isPostgres } from '../../src/store/dialect.js';

/**
 * Everything a node's store holds, as text to search for secrets that must not be there: on SQLite
 * the bytes of its files (database and WAL, deleted pages too), on PostgreSQL every row of every
 * table (the server's files are not the test's to read).
 */
export async function storedText(dataDir: string, db: Database): Promise<string> {
  if (!isPostgres(db)) {
    return readdirSync(dataDir)
      .filter((f) => f.startsWith('alacarte.sqlite'))
      .map((f) => readFileSync(join(dataDir, f)).toString('latin1'))
      .join('');
  }
  const parts: string[] = [];
  for (const table of await db.introspection.getTables()) {
    // biome-ignore lint/suspicious/noExplicitAny: every table, whatever its columns.
    const rows = await (db as any).selectFrom(table.name).selectAll().execute();
    parts.push(JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
  }
  return parts.join('\n');
}
