import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyEnvelope } from '../../src/engine/apply/apply.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { Tree, overTheWire } from '../helpers/tree.js';

/**
 * A clinic writes a row between the engine's pickup and its apply of a received change to the same
 * row. The local write must neither be overwritten by an older received value nor be forgotten:
 * the next pickup still sends it.
 */
describe('a local write that no pickup has seen when a received change lands', () => {
  const tree = new Tree();
  let root: SyncNode;
  let child: SyncNode;

  beforeAll(async () => {
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    await execute(
      db.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-1'), ('F', 1, '2026-01-01', 'p-2')",
    );
    root = await tree.root(db, 'district');
    child = await tree.clone(root, 'centre');
  });
  afterAll(async () => tree.close());

  it('keeps the local write and sends it later', async () => {
    await execute(root.pool, "UPDATE person SET gender = 'from-root' WHERE uuid IN ('p-1', 'p-2')");
    const env = overTheWire(await root.outgoing(child.nodeId));
    // the clinic writes after the root's edit, before the child's engine picks anything up
    await execute(child.pool, "UPDATE person SET birthdate = '2001-01-01' WHERE uuid = 'p-1'");
    await execute(child.pool, "UPDATE person SET gender = 'local-later' WHERE uuid = 'p-2'");

    await child.capture.reconcile();
    await applyEnvelope(
      {
        pool: child.pool,
        plans: child.capture.plans(),
        colsets: child.capture.colsets,
        nodeId: child.nodeId,
        selected: child.capture.synced(),
        clock: { nowMs: Date.now(), aheadMs: 600_000, senderAheadMs: 0 },
      },
      env,
      root.nodeId,
    );
    const row = async (n: SyncNode, uuid: string) =>
      (await queryRows(n.pool, 'SELECT gender, birthdate FROM person WHERE uuid = ?', [uuid]))[0];
    expect(await row(child, 'p-1')).toEqual({ gender: 'from-root', birthdate: '2001-01-01' });
    expect((await row(child, 'p-2'))!.gender).toBe('local-later');

    await tree.sync(child, root);
    for (const n of [root, child]) {
      expect(await row(n, 'p-1')).toEqual({ gender: 'from-root', birthdate: '2001-01-01' });
      expect((await row(n, 'p-2'))!.gender).toBe('local-later');
    }
  });
});
