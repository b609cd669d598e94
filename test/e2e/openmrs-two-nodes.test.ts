import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadSampleDb } from '../helpers/db.js';
import {
  diffModel,
  diffNodes,
  ExpectedModel,
  NO_DIFF,
  readModel,
  type Model,
} from '../helpers/model.js';
import {
  createPatient,
  createPerson,
  idOf,
  insert,
  OMRS,
  OPENMRS_MODEL,
  shiftLocalIds,
  transaction,
  type ExpectedRow,
} from '../helpers/openmrs.js';
import { parkedOn } from '../helpers/state.js';
import { Tree } from '../helpers/tree.js';

/**
 * Issue 3, "Done when", first point: two copies of the OpenMRS core test dataset (a root and its
 * clone) converge. Every end state is checked against an independent model of the expected rows
 * (test/helpers/model.ts), keyed by uuid with foreign keys as the referenced rows' uuids, on each
 * node, and the two nodes' full models are compared as well.
 */
describe('OpenMRS test dataset on two nodes', () => {
  let tree: Tree;
  let parent: SyncNode;
  let child: SyncNode;
  let expected: ExpectedModel;

  beforeEach(async () => {
    tree = new Tree();
    parent = await tree.root(await loadSampleDb('openmrs-testdata'), 'district');
    child = await tree.clone(parent, 'clinic');
    // The shared starting point, read before anything changes: what both nodes hold now.
    expected = new ExpectedModel((await readModel(parent.pool, OPENMRS_MODEL)).model);
  });
  afterEach(async () => tree.close());

  const add = (rows: ExpectedRow[]) => {
    for (const r of rows) expected.insert(r.table, r.key, r.row);
  };

  /** Both nodes hold exactly the expected rows, and the same rows as each other, column by column. */
  async function expectConverged(): Promise<{ parent: Model; child: Model }> {
    const p = await readModel(parent.pool, OPENMRS_MODEL);
    const c = await readModel(child.pool, OPENMRS_MODEL);
    // Soft: every difference is reported, not only the first.
    expect.soft(await parkedOn(parent), 'changes left parked on the parent').toEqual([]);
    expect.soft(await parkedOn(child), 'changes left parked on the child').toEqual([]);
    expect.soft(p.duplicates, 'rows held twice on the parent').toEqual([]);
    expect.soft(c.duplicates, 'rows held twice on the child').toEqual([]);
    expect
      .soft(diffModel(p.model, expected.model), 'parent against the expected model')
      .toEqual(NO_DIFF);
    expect
      .soft(diffModel(c.model, expected.model), 'child against the expected model')
      .toEqual(NO_DIFF);
    expect.soft(diffNodes(p.model, c.model), 'parent against child, every column').toEqual([]);
    return { parent: p.model, child: c.model };
  }

  it('a patient registered on the child reaches the parent with every foreign key on the right rows', async () => {
    // The parent's local ids are pushed far from the child's: a local id copied across instead of
    // translated would point at no row, or at the wrong one.
    await shiftLocalIds(parent.pool, 5000);
    const p = await createPatient(child.pool, {
      given: 'Amina',
      family: 'Njoroge',
      gender: 'F',
      birthdate: '1988-04-12',
      identifier: '100-8',
      at: '2026-03-02 09:15:00',
      weightKg: '61.5',
      favoriteFood: 'ugali',
    });
    add(p.rows);

    await tree.sync(child, parent);
    await expectConverged();

    // The same links read with plain joins on the parent, as a clinician's report would.
    const [link] = await queryRows(
      parent.pool,
      `SELECT pe.uuid AS person, v.uuid AS visit, l.uuid AS location, et.uuid AS type,
              pit.uuid AS idtype, il.uuid AS idlocation, pr.uuid AS provider
         FROM encounter e
         JOIN patient pa ON pa.patient_id = e.patient_id
         JOIN person pe ON pe.person_id = pa.patient_id
         JOIN visit v ON v.visit_id = e.visit_id AND v.patient_id = pa.patient_id
         JOIN location l ON l.location_id = e.location_id
         JOIN encounter_type et ON et.encounter_type_id = e.encounter_type
         JOIN patient_identifier pi ON pi.patient_id = pa.patient_id
         JOIN patient_identifier_type pit ON pit.patient_identifier_type_id = pi.identifier_type
         JOIN location il ON il.location_id = pi.location_id
         JOIN encounter_provider ep ON ep.encounter_id = e.encounter_id
         JOIN provider pr ON pr.provider_id = ep.provider_id
        WHERE e.uuid = ?`,
      [p.encounter],
    );
    expect(link).toEqual({
      person: p.person,
      visit: p.visit,
      location: OMRS.xanadu,
      type: OMRS.encounterType,
      idtype: OMRS.idType,
      idlocation: OMRS.xanadu,
      provider: OMRS.provider,
    });
    const obs = await queryRows(
      parent.pool,
      `SELECT o.uuid, e.uuid AS enc, pe.uuid AS person, c.uuid AS concept, vc.uuid AS coded,
              CAST(o.value_numeric AS CHAR) AS num, o.value_text AS txt
         FROM obs o JOIN encounter e ON e.encounter_id = o.encounter_id
         JOIN person pe ON pe.person_id = o.person_id
         JOIN concept c ON c.concept_id = o.concept_id
         LEFT JOIN concept vc ON vc.concept_id = o.value_coded
        WHERE o.uuid IN (?, ?, ?) ORDER BY o.uuid`,
      [p.obsWeight, p.obsCoded, p.obsText],
    );
    expect(obs).toEqual(
      [
        { uuid: p.obsWeight, concept: OMRS.weight, coded: null, num: '61.5', txt: null },
        { uuid: p.obsCoded, concept: OMRS.foodAssistance, coded: OMRS.yes, num: null, txt: null },
        { uuid: p.obsText, concept: OMRS.favoriteFood, coded: null, num: null, txt: 'ugali' },
      ]
        .map((o) => ({ ...o, enc: p.encounter, person: p.person }))
        .sort((a, b) => (a.uuid < b.uuid ? -1 : 1)),
    );
    // The parent's own ids were used: the new person has one of the parent's local ids.
    expect(await idOf(parent.pool, 'person', p.person)).toBeGreaterThan(5000);
  });

  it('updates and voids travel both ways', async () => {
    const p = await createPatient(child.pool, {
      given: 'Baraka',
      family: 'Otieno',
      gender: 'M',
      birthdate: '1979-11-02',
      identifier: '200-5',
      at: '2026-03-03 10:00:00',
      weightKg: '70',
      favoriteFood: 'fish',
    });
    add(p.rows);
    await tree.sync(child, parent);

    // On the parent: a data clerk voids the misspelt name and corrects where the id was issued.
    await execute(
      parent.pool,
      "UPDATE person_name SET voided = 1, voided_by = ?, date_voided = '2026-03-04 08:00:00', void_reason = 'misspelt' WHERE uuid = ?",
      [await idOf(parent.pool, 'users', OMRS.admin), p.name],
    );
    await execute(parent.pool, 'UPDATE patient_identifier SET location_id = ? WHERE uuid = ?', [
      await idOf(parent.pool, 'location', OMRS.neverland),
      p.identifier,
    ]);
    // On the child: the birthdate is corrected and a wrongly entered obs is voided.
    await execute(
      child.pool,
      "UPDATE person SET birthdate = '1979-12-02', changed_by = ?, date_changed = '2026-03-04 09:00:00' WHERE uuid = ?",
      [await idOf(child.pool, 'users', OMRS.admin), p.person],
    );
    await execute(
      child.pool,
      "UPDATE obs SET voided = 1, voided_by = ?, date_voided = '2026-03-04 09:05:00', void_reason = 'wrong patient' WHERE uuid = ?",
      [await idOf(child.pool, 'users', OMRS.admin), p.obsText],
    );
    const voided = (by: string, at: string, reason: string) => ({
      voided: '1',
      voided_by: by,
      date_voided: at,
      void_reason: reason,
    });
    expected
      .update('person_name', p.name, voided(OMRS.admin, '2026-03-04 08:00:00', 'misspelt'))
      .update('patient_identifier', p.identifier, { location_id: OMRS.neverland })
      .update('person', p.person, {
        birthdate: '1979-12-02',
        changed_by: OMRS.admin,
        date_changed: '2026-03-04 09:00:00',
      })
      .update('obs', p.obsText, voided(OMRS.admin, '2026-03-04 09:05:00', 'wrong patient'));

    await tree.sync(child, parent);
    await expectConverged();
  });

  it('rows created on both sides with colliding local ids both survive, distinct', async () => {
    const onChild = await createPerson(child.pool, {
      given: 'Chausiku',
      family: 'Mwangi',
      gender: 'F',
      at: '2026-03-05 08:00:00',
    });
    const onParent = await createPerson(parent.pool, {
      given: 'Daudi',
      family: 'Kamau',
      gender: 'M',
      at: '2026-03-05 08:01:00',
    });
    // The precondition that makes this test mean something: the same local id on both nodes.
    expect(onChild.personId).toBe(onParent.personId);
    expect(onChild.person).not.toBe(onParent.person);
    add(onChild.rows);
    add(onParent.rows);

    await tree.sync(child, parent);
    const { parent: p, child: c } = await expectConverged();
    for (const m of [p, c]) {
      const names = [...m.get('person_name')!.values()]
        .filter((n) => n.person_id === onChild.person || n.person_id === onParent.person)
        .map((n) => `${n.person_id} ${n.given_name}`)
        .sort();
      expect(names).toEqual([`${onChild.person} Chausiku`, `${onParent.person} Daudi`].sort());
    }
  });

  /**
   * users ↔ person ↔ concept: a new user on the child with its new person (users.person_id →
   * person, person.creator → users) and a concept that new user created (concept.creator → users).
   * Each row refers to one that arrives in the same batch.
   */
  it('handles the users ↔ person ↔ concept cycle: a new user, its person, and a concept it created', async () => {
    const at = '2026-03-06 07:30:00';
    const u = {
      person: randomUUID(),
      name: randomUUID(),
      user: randomUUID(),
      concept: randomUUID(),
      conceptName: randomUUID(),
    };
    await transaction(child.pool, async (c) => {
      const admin = await idOf(c, 'users', OMRS.admin);
      const personId = await insert(c, 'person', {
        gender: 'F',
        creator: admin,
        date_created: at,
        uuid: u.person,
      });
      await insert(c, 'person_name', {
        preferred: 1,
        person_id: personId,
        given_name: 'Esther',
        family_name: 'Wanjiru',
        creator: admin,
        date_created: at,
        uuid: u.name,
      });
      const userId = await insert(c, 'users', {
        system_id: '7-1',
        username: 'nurse.esther',
        creator: admin,
        date_created: at,
        person_id: personId,
        uuid: u.user,
      });
      const conceptId = await insert(c, 'concept', {
        datatype_id: await idOf(c, 'concept_datatype', OMRS.textType),
        class_id: await idOf(c, 'concept_class', OMRS.questionClass),
        creator: userId,
        date_created: at,
        uuid: u.concept,
      });
      await insert(c, 'concept_name', {
        concept_id: conceptId,
        name: 'CLINIC QUEUE NOTE',
        locale: 'en',
        locale_preferred: 1,
        creator: userId,
        date_created: at,
        concept_name_type: 'FULLY_SPECIFIED',
        uuid: u.conceptName,
      });
    });
    expected
      .insert('person', u.person, { creator: OMRS.admin, changed_by: null, uuid: u.person })
      .insert('person_name', u.name, { person_id: u.person, given_name: 'Esther', uuid: u.name })
      .insert('users', u.user, {
        username: 'nurse.esther',
        system_id: '7-1',
        person_id: u.person,
        creator: OMRS.admin,
        uuid: u.user,
      })
      .insert('concept', u.concept, {
        datatype_id: OMRS.textType,
        class_id: OMRS.questionClass,
        creator: u.user,
        uuid: u.concept,
      })
      .insert('concept_name', u.conceptName, {
        concept_id: u.concept,
        name: 'CLINIC QUEUE NOTE',
        creator: u.user,
        uuid: u.conceptName,
      });

    await tree.sync(child, parent);
    await expectConverged();
    const [row] = await queryRows(
      parent.pool,
      `SELECT u.username, p.uuid AS person, cu.uuid AS conceptCreator, cn.name
         FROM concept c JOIN users cu ON cu.user_id = c.creator
         JOIN users u ON u.uuid = ? JOIN person p ON p.person_id = u.person_id
         JOIN concept_name cn ON cn.concept_id = c.concept_id
        WHERE c.uuid = ?`,
      [u.user, u.concept],
    );
    expect(row).toEqual({
      username: 'nurse.esther',
      person: u.person,
      conceptCreator: u.user,
      name: 'CLINIC QUEUE NOTE',
    });
  });

  /**
   * The same cycle closed on single rows: the new user's own person row names the new user as
   * its last editor (person.changed_by → users, users.person_id → person), all before one pickup,
   * so each of the two rows in the batch refers to the other.
   */
  it('handles a row-level users ↔ person cycle inside one batch', async () => {
    const at = '2026-03-06 07:45:00';
    const u = { person: randomUUID(), user: randomUUID() };
    await transaction(child.pool, async (c) => {
      const admin = await idOf(c, 'users', OMRS.admin);
      const personId = await insert(c, 'person', {
        gender: 'M',
        creator: admin,
        date_created: at,
        uuid: u.person,
      });
      const userId = await insert(c, 'users', {
        system_id: '8-6',
        username: 'clerk.juma',
        creator: admin,
        date_created: at,
        person_id: personId,
        uuid: u.user,
      });
      await execute(c, 'UPDATE person SET changed_by = ?, date_changed = ? WHERE person_id = ?', [
        userId,
        at,
        personId,
      ]);
    });
    expected
      .insert('person', u.person, {
        creator: OMRS.admin,
        changed_by: u.user,
        date_changed: at,
        uuid: u.person,
      })
      .insert('users', u.user, { username: 'clerk.juma', person_id: u.person, uuid: u.user });

    await tree.sync(child, parent);
    await expectConverged();
  });
});
