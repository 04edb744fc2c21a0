import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NodeSecret, requireStoreNodeKey } from '../../../src/leases/node-secret.js';
import { openDatabase } from '../../../src/store/database.js';

/**
 * Every node on one store must have the same node.key (README, replicas): the first one records
 * a value derived from it; another key is refused at start, the key itself never stored.
 */
describe('requireStoreNodeKey', () => {
  it('records the first node key, passes it again, and refuses another one', async () => {
    const db = await openDatabase(':memory:');
    try {
      const key = randomBytes(32);
      await requireStoreNodeKey(db, NodeSecret.fromBytes(key), '/srv/a/node.key');
      await requireStoreNodeKey(db, NodeSecret.fromBytes(Buffer.from(key)), '/srv/b/node.key');
      await expect(
        requireStoreNodeKey(db, NodeSecret.fromBytes(randomBytes(32)), '/srv/c/node.key'),
      ).rejects.toThrow(
        /^\/srv\/c\/node\.key is not the node key the other nodes of this store use: .*node\.key and mint\.seed/,
      );
      const rows = await db.selectFrom('node_identity').selectAll().execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]?.value).not.toContain(key.toString('hex'));
      expect(rows[0]?.value).not.toContain(key.toString('base64'));
    } finally {
      await db.destroy();
    }
  });
});
