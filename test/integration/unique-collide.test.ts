import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mayCollide } from '../../src/engine/apply/uniqueKeys.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadSampleDb } from '../helpers/db.js';
import { Tree } from '../helpers/tree.js';

/*
 * New rows of a table with unique keys go in together unless they may collide (issue 12 point 4,
 * issue 11): the database decides, with the column's collation, as settling one row at a time
 * would. OpenMRS's identifier column is utf8_general_ci, where "JOSÉ-1" is "jose-1" and "Müller"
 * is "Muller", and OpenMRS keeps one identifier of a type to one patient in its code only.
 */
describe('which new identifiers may collide', () => {
  let tree: Tree;
  let root: SyncNode;

  beforeAll(async () => {
    tree = new Tree();
    root = await tree.root(await loadSampleDb('openmrs-testdata'), 'district');
  }, 120_000);
  afterAll(async () => tree.close());

  it('flags values equal to a row here or to one another under the column collation', async () => {
    const [held] = await queryRows(
      root.pool,
      'SELECT patient_identifier_id AS id, identifier_type AS type FROM patient_identifier WHERE voided = 0 LIMIT 1',
    );
    await execute(
      root.pool,
      "UPDATE patient_identifier SET identifier = 'JOSE-1' WHERE patient_identifier_id = ?",
      [held!.id],
    );
    const type = String(held!.type);
    const row = (identifier: string, over: Record<string, string> = {}) => ({
      identifier,
      identifier_type: type,
      voided: '0',
      ...over,
    });
    const plan = (await root.tablePlans()).get('patient_identifier')!;
    const conn = await root.pool.getConnection();
    try {
      const flagged = await mayCollide(conn, plan, [
        row('JOSÉ-1'), // the row here, to the collation
        row('Müller'), // these two are one value
        row('Muller'),
        row('other-9'),
        row('Muller', { voided: '1' }), // a voided identifier holds no value
        row('JOSE-1', { identifier_type: '987654' }), // another type
        row('jose-1 '), // letter case and a trailing space
      ]);
      expect([...flagged].sort()).toEqual([0, 1, 2, 6]);
    } finally {
      conn.release();
    }
  });
});
