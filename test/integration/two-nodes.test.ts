import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { Tree } from '../helpers/tree.js';

describe('two nodes on the clinic fixture', () => {
  let tree: Tree;
  let root: SyncNode;
  let child: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    root = await tree.root(db, 'district');
    child = await tree.clone(root, 'centre');
  });
  afterEach(async () => tree.close());

  it('moves a new patient from the child to the root with its references', async () => {
    await execute(
      child.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-new')",
    );
    await execute(
      child.pool,
      "INSERT INTO patient (patient_id, creator) SELECT person_id, 1 FROM person WHERE uuid = 'p-new'",
    );
    await execute(
      child.pool,
      "INSERT INTO encounter (patient_id, encounter_datetime, uuid) SELECT person_id, '2026-01-02', 'e-new' FROM person WHERE uuid = 'p-new'",
    );
    await tree.sync(child, root);
    const [row] = await queryRows(
      root.pool,
      "SELECT p.uuid AS person, e.uuid AS enc FROM encounter e JOIN patient pa ON pa.patient_id = e.patient_id JOIN person p ON p.person_id = pa.patient_id WHERE e.uuid = 'e-new'",
    );
    expect(row).toEqual({ person: 'p-new', enc: 'e-new' });
  });
});
