// Worker thread for the reaper benchmark: watches, from its own read connection to the node's
// store, when each lease leaves `running`, and when its sandbox directory is gone. Being a separate
// thread, it notes the moment a change was committed even while the node's event loop is busy.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import SQLite from 'better-sqlite3';

const { dbPath, runtimeDir, ids, pollMs, timeoutAt } = workerData;
const db = new SQLite(dbPath, { readonly: true });
db.pragma('busy_timeout = 1000');
const query = db.prepare(
  `SELECT id, state, ended_at FROM leases WHERE state <> 'running' AND id IN (SELECT value FROM json_each(?))`,
);
const wanted = JSON.stringify(ids);
const ended = new Map();
const removed = new Map();

function poll() {
  const now = Date.now();
  for (const row of query.all(wanted)) {
    if (!ended.has(row.id))
      ended.set(row.id, { seenAt: now, state: row.state, endedAt: Number(row.ended_at) });
  }
  for (const id of ids) {
    if (!removed.has(id) && !existsSync(join(runtimeDir, id))) removed.set(id, now);
  }
  const done = ended.size === ids.length && removed.size === ids.length;
  if (done || now > timeoutAt) {
    db.close();
    parentPort.postMessage({ ended: [...ended], removed: [...removed], timedOut: !done });
    return;
  }
  setTimeout(poll, pollMs);
}
poll();
