import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LeaseId } from '../../../src/core/ids.js';
import { RunningMarks } from '../../../src/leases/running-marks.js';
import { openDatabase } from '../../../src/store/database.js';
import { GroupCommit } from '../../../src/store/group-commit.js';
import { leaseRow } from '../../helpers/lease-rows.js';

/**
 * Leases whose starts finish together are marked running in one transaction (one commit), each
 * caller told whether its own row was still pending; what is committed is in the file once they
 * hear back (read through a second connection).
 */
const NOW = 1_800_000_000_000;
const dir = mkdtempSync(join(tmpdir(), 'alacarte-marks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const row = (id: string, state: 'pending' | 'stopped') =>
  leaseRow({
    id,
    state,
    created_at: NOW,
    started_at: null,
    expires_at: null,
    ended_at: state === 'stopped' ? NOW : null,
    held: 60,
    target: 'crun:rep_a',
    replica: 'rep_a',
  });

describe('RunningMarks', () => {
  it('marks the starts of one turn in one commit, durable when each caller hears back; a lease no longer pending is not marked', async () => {
    const file = join(dir, 'store.sqlite');
    const db = await openDatabase(file);
    const ids = Array.from({ length: 40 }, (_, i) => `lse_burst${i}` as LeaseId);
    await db
      .insertInto('leases')
      .values([...ids.map((id) => row(id, 'pending')), row('lse_ended', 'stopped')])
      .execute();
    let transactions = 0;
    const transaction = db.transaction.bind(db);
    db.transaction = () => {
      transactions++;
      return transaction();
    };
    const marks = new RunningMarks(new GroupCommit(db, { grouped: true }).transact);
    const expires = new Date(NOW + 3_600_000);
    const results = await Promise.all([
      ...ids.map((id, i) => marks.mark(id, new Date(NOW), expires, { 8080: `http://x/${i}` })),
      marks.mark('lse_ended' as LeaseId, new Date(NOW), expires, {}),
    ]);
    expect(results).toEqual([...ids.map(() => true), false]);
    expect(transactions).toBe(1);

    // Another connection sees every mark committed, and the ended lease untouched.
    const other = await openDatabase(file);
    const rows = await other
      .selectFrom('leases')
      .select(['id', 'state', 'expires_at', 'ports_json'])
      .execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const [i, id] of ids.entries()) {
      expect(byId.get(id)).toMatchObject({ state: 'running', expires_at: expires.getTime() });
      expect(JSON.parse(byId.get(id)!.ports_json)).toEqual({ 8080: `http://x/${i}` });
    }
    expect(byId.get('lse_ended')?.state).toBe('stopped');
    await other.destroy();
    await db.destroy();
  });
});
