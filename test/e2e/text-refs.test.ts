import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadSampleDb } from '../helpers/db.js';
import { Tree } from '../helpers/tree.js';

/**
 * OpenMRS person attributes whose type's format is a class (org.openmrs.Concept, Location…) hold
 * a local id as text: it must travel as the referenced row's identity and land as the receiver's
 * own local id of that row.
 */
describe('local ids held as text', () => {
  const tree = new Tree();
  let root: SyncNode;
  let child: SyncNode;

  beforeAll(async () => {
    root = await tree.root(await loadSampleDb('openmrs-testdata'), 'district');
    child = await tree.clone(root, 'centre');
  });
  afterAll(async () => tree.close());

  const newConcept = (uuid: string) =>
    `INSERT INTO concept (datatype_id, class_id, creator, date_created, uuid)
     SELECT MIN(concept_datatype_id), (SELECT MIN(concept_class_id) FROM concept_class), 1, NOW(), '${uuid}' FROM concept_datatype`;

  it('translates a Civil Status (org.openmrs.Concept) attribute to the receiver’s concept id', async () => {
    // Both clinics create a concept: they take the same local id, so a copied id would be wrong.
    await execute(root.pool, newConcept('c-root'));
    await execute(child.pool, newConcept('c-child'));
    const [[mine], [theirs]] = await Promise.all([
      queryRows(child.pool, "SELECT concept_id AS id FROM concept WHERE uuid = 'c-child'"),
      queryRows(root.pool, "SELECT concept_id AS id FROM concept WHERE uuid = 'c-root'"),
    ]);
    expect(mine!.id).toBe(theirs!.id);
    await execute(
      child.pool,
      `INSERT INTO person_attribute (person_id, value, person_attribute_type_id, creator, date_created, uuid)
       VALUES ((SELECT MIN(person_id) FROM person), ?, 8, 1, NOW(), 'pa-civil')`,
      [String(mine!.id)],
    );
    await tree.sync(child, root);
    const [landed] = await queryRows(
      root.pool,
      "SELECT c.uuid FROM person_attribute pa JOIN concept c ON c.concept_id = CAST(pa.value AS UNSIGNED) WHERE pa.uuid = 'pa-civil'",
    );
    expect(landed!.uuid).toBe('c-child');
    // and plain-text attributes (format java.lang.String) travel untouched
    await execute(
      root.pool,
      "UPDATE person_attribute SET value = '1234' WHERE person_attribute_type_id = 1 LIMIT 1",
    );
    await tree.sync(child, root);
    const [plain] = await queryRows(
      child.pool,
      "SELECT COUNT(*) AS n FROM person_attribute WHERE person_attribute_type_id = 1 AND value = '1234'",
    );
    expect(Number(plain!.n)).toBe(1);
  });
});
