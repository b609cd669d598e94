import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { Tree } from '../helpers/tree.js';

/**
 * Which data is synced (DESIGN §5): a node that leaves a table out keeps its neighbours' changes
 * to it in its log without applying them, and passes them on as skip markers, so sequences stay
 * dense and every other table keeps flowing.
 */
describe('a middle node that leaves a table out', () => {
  const tree = new Tree();
  let root: SyncNode;
  let middle: SyncNode;
  let leaf: SyncNode;

  beforeAll(async () => {
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    root = await tree.root(db, 'national');
    middle = await tree.clone(root, 'district');
    leaf = await tree.clone(middle, 'centre');
    middle.settings.tables.exclude = ['role'];
  });
  afterAll(async () => tree.close());

  it('keeps the leaf’s change to that table, sends a skip marker up, and lets the rest flow', async () => {
    await execute(leaf.pool, "INSERT INTO role VALUES ('Midwife', 'kept at the centre')");
    await execute(
      leaf.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, NOW(), 'p-after')",
    );
    await tree.sync(leaf, middle);
    await tree.sync(middle, root);

    const roles = async (n: SyncNode) =>
      Number(
        (await queryRows(n.pool, "SELECT COUNT(*) AS n FROM role WHERE role = 'Midwife'"))[0]!.n,
      );
    expect(await roles(leaf)).toBe(1);
    expect(await roles(middle)).toBe(0);
    expect(await roles(root)).toBe(0);
    // the change after it arrived everywhere: the stream was not held up
    for (const n of [middle, root]) {
      expect((await queryRows(n.pool, "SELECT 1 FROM person WHERE uuid = 'p-after'")).length).toBe(
        1,
      );
    }
    // the middle node logged the change it did not apply; the root holds only a skip marker for it
    const atMiddle = await queryRows(
      middle.pool,
      'SELECT op, tbl FROM clinicsync_log WHERE origin = ? ORDER BY seq',
      [leaf.nodeId],
    );
    expect(atMiddle.map((r) => [r.op, r.tbl])).toEqual([
      ['I', 'role'],
      ['I', 'person'],
    ]);
    const atRoot = await queryRows(
      root.pool,
      'SELECT seq, op FROM clinicsync_log WHERE origin = ? ORDER BY seq',
      [leaf.nodeId],
    );
    expect(atRoot.map((r) => [Number(r.seq), r.op])).toEqual([
      [1, 'S'],
      [2, 'I'],
    ]);
    const [vv] = await queryRows(root.pool, 'SELECT seq FROM clinicsync_vv WHERE origin = ?', [
      leaf.nodeId,
    ]);
    expect(Number(vv!.seq)).toBe(2);
  });
});
