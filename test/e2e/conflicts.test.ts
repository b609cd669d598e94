import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadSampleDb } from '../helpers/db.js';
import { diffModel, diffNodes, ExpectedModel, NO_DIFF, readModel } from '../helpers/model.js';
import { idOf, OMRS, OPENMRS_MODEL } from '../helpers/openmrs.js';
import { conflictsOn, parkedOn } from '../helpers/state.js';
import { Tree } from '../helpers/tree.js';

/**
 * Issue 3, "Done when", fifth point (DESIGN §6): both nodes change the same rows between
 * exchanges. Different columns of one row both survive; the same column goes to the later clock
 * on both nodes, and the losing value is recorded where it was turned away; a delete wins over a
 * concurrent update, whichever way round the two meet. The later edit is made clearly later
 * (50 ms) so the expected winner does not depend on clock resolution.
 */

const OBS = {
  /** obs 7: WEIGHT 50 for Collet */
  weight7: '39fb7f47-e80a-4056-9285-bd798be13c63',
  obs9: 'be48cdcb-6a76-47e3-9f2e-2635032f3a9a',
  obs10: '2f616900-5e7c-4667-9a7f-dcb260abf1de',
  obs11: 'f6ec1267-8eac-415f-a3f0-e47be2c8bb67',
  obs16: '2ed1e57d-9f18-41d3-b067-2eeaf4b30fb0',
};
/** person_name of Collet */
const COLLET_NAME = 'a65c347e-1384-493a-a55b-d325924acd94';

describe('conflicts between two nodes on the OpenMRS test dataset', () => {
  let tree: Tree;
  let parent: SyncNode;
  let child: SyncNode;
  let expected: ExpectedModel;

  beforeEach(async () => {
    tree = new Tree();
    parent = await tree.root(await loadSampleDb('openmrs-testdata'), 'district');
    child = await tree.clone(parent, 'clinic');
    expected = new ExpectedModel((await readModel(parent.pool, OPENMRS_MODEL)).model);
  });
  afterEach(async () => tree.close());

  async function expectConverged(): Promise<void> {
    const p = await readModel(parent.pool, OPENMRS_MODEL);
    const c = await readModel(child.pool, OPENMRS_MODEL);
    expect.soft(await parkedOn(parent), 'parked on the parent').toEqual([]);
    expect.soft(await parkedOn(child), 'parked on the child').toEqual([]);
    expect.soft(diffModel(p.model, expected.model), 'parent against the model').toEqual(NO_DIFF);
    expect.soft(diffModel(c.model, expected.model), 'child against the model').toEqual(NO_DIFF);
    expect.soft(diffNodes(p.model, c.model), 'parent against child').toEqual([]);
  }

  it('concurrent edits of different columns of one person both survive, on both nodes', async () => {
    // Collet's birthdate is corrected at the district, her gender at the clinic; her name gets a
    // new family name at the district while the clinic voids it (the void group, together).
    await execute(parent.pool, "UPDATE person SET birthdate = '1976-08-30' WHERE uuid = ?", [
      OMRS.collet,
    ]);
    await execute(child.pool, "UPDATE person SET gender = 'M' WHERE uuid = ?", [OMRS.collet]);
    await execute(
      parent.pool,
      "UPDATE person_name SET family_name = 'Chebaskwoni' WHERE uuid = ?",
      [COLLET_NAME],
    );
    await execute(
      child.pool,
      "UPDATE person_name SET voided = 1, voided_by = ?, date_voided = '2026-03-09 10:00:00', void_reason = 'duplicate' WHERE uuid = ?",
      [await idOf(child.pool, 'users', OMRS.admin), COLLET_NAME],
    );
    expected
      .update('person', OMRS.collet, { birthdate: '1976-08-30', gender: 'M' })
      .update('person_name', COLLET_NAME, {
        family_name: 'Chebaskwoni',
        voided: '1',
        voided_by: OMRS.admin,
        date_voided: '2026-03-09 10:00:00',
        void_reason: 'duplicate',
      });

    await tree.sync(child, parent);
    await expectConverged();
    // Nothing was lost, so nothing is left for a data manager to review.
    expect.soft(await conflictsOn(parent), 'conflicts on the parent').toEqual([]);
    expect.soft(await conflictsOn(child), 'conflicts on the child').toEqual([]);
  });

  it('the same column edited on both nodes goes to the later clock on both, and the loser is recorded', async () => {
    // Earlier edits...
    await execute(parent.pool, "UPDATE person SET birthdate = '1976-01-01' WHERE uuid = ?", [
      OMRS.collet,
    ]);
    await execute(child.pool, "UPDATE person SET birthdate = '1990-01-01' WHERE uuid = ?", [
      OMRS.anet,
    ]);
    await execute(parent.pool, 'UPDATE obs SET value_numeric = 52 WHERE uuid = ?', [OBS.weight7]);
    await sleep(50);
    // ...and later ones: the clinic's for Collet, the district's for Anet.
    await execute(child.pool, "UPDATE person SET birthdate = '1976-02-02' WHERE uuid = ?", [
      OMRS.collet,
    ]);
    await execute(parent.pool, "UPDATE person SET birthdate = '1990-02-02' WHERE uuid = ?", [
      OMRS.anet,
    ]);
    // The obs value group resolves as one: the clinic's later note replaces the whole value, so
    // the district's earlier 52 is not mixed into it.
    await execute(child.pool, "UPDATE obs SET value_text = 'scale broken' WHERE uuid = ?", [
      OBS.weight7,
    ]);
    expected
      .update('person', OMRS.collet, { birthdate: '1976-02-02' })
      .update('person', OMRS.anet, { birthdate: '1990-02-02' })
      .update('obs', OBS.weight7, { value_numeric: '50', value_text: 'scale broken' });

    await tree.sync(child, parent);
    await expectConverged();

    // The parent's earlier value for Collet reached the child after the child's later one: the
    // child turned it away and recorded it; the other way round for Anet.
    const person = (c: Awaited<ReturnType<typeof conflictsOn>>) =>
      c.filter((x) => x.columns.includes('birthdate'));
    expect
      .soft(person(await conflictsOn(child, 'person')), 'conflicts on the child')
      .toContainEqual({
        tbl: 'person',
        ident: OMRS.collet,
        columns: ['birthdate'],
        winner: { birthdate: '1976-02-02' },
        loser: { birthdate: '1976-01-01' },
      });
    expect
      .soft(person(await conflictsOn(parent, 'person')), 'conflicts on the parent')
      .toContainEqual({
        tbl: 'person',
        ident: OMRS.anet,
        columns: ['birthdate'],
        winner: { birthdate: '1990-02-02' },
        loser: { birthdate: '1990-01-01' },
      });
    expect
      .soft(
        (await conflictsOn(child, 'obs')).filter((x) => x.ident === OBS.weight7).length,
        'obs value conflict recorded on the child',
      )
      .toBeGreaterThan(0);
    // Every overwritten concurrent value is kept, also where the incoming one won: the parent's
    // own value for Collet, replaced by the clinic's later one, and the other way round for Anet.
    expect
      .soft(person(await conflictsOn(parent, 'person')), 'overwritten on the parent')
      .toContainEqual({
        tbl: 'person',
        ident: OMRS.collet,
        columns: ['birthdate'],
        winner: { birthdate: '1976-02-02' },
        loser: { birthdate: '1976-01-01' },
      });
    expect
      .soft(person(await conflictsOn(child, 'person')), 'overwritten on the child')
      .toContainEqual({
        tbl: 'person',
        ident: OMRS.anet,
        columns: ['birthdate'],
        winner: { birthdate: '1990-02-02' },
        loser: { birthdate: '1990-01-01' },
      });
  });

  it("an edit made after seeing the other node's edit is no conflict", async () => {
    await execute(child.pool, "UPDATE person SET birthdate = '1976-03-03' WHERE uuid = ?", [
      OMRS.collet,
    ]);
    await tree.sync(child, parent);
    await execute(parent.pool, "UPDATE person SET birthdate = '1976-04-04' WHERE uuid = ?", [
      OMRS.collet,
    ]);
    await tree.sync(child, parent);
    await execute(child.pool, "UPDATE person SET birthdate = '1976-05-05' WHERE uuid = ?", [
      OMRS.collet,
    ]);
    await tree.sync(child, parent);
    expected.update('person', OMRS.collet, { birthdate: '1976-05-05' });
    await expectConverged();
    expect.soft(await conflictsOn(parent), 'conflicts on the parent').toEqual([]);
    expect.soft(await conflictsOn(child), 'conflicts on the child').toEqual([]);
  });

  it('a delete against an update ends deleted on both nodes, whichever way round', async () => {
    const admin = await idOf(parent.pool, 'users', OMRS.admin);
    // First moves...
    await execute(child.pool, 'DELETE FROM obs WHERE uuid = ?', [OBS.obs9]);
    await execute(parent.pool, 'DELETE FROM obs WHERE uuid = ?', [OBS.obs11]);
    await execute(parent.pool, "UPDATE obs SET comments = 'rechecked' WHERE uuid = ?", [OBS.obs16]);
    await execute(child.pool, "UPDATE obs SET comments = 'rechecked' WHERE uuid = ?", [OBS.obs10]);
    await sleep(50);
    // ...then the other node's move on the same row, later by the clock.
    await execute(parent.pool, 'UPDATE obs SET value_numeric = 151 WHERE uuid = ?', [OBS.obs9]);
    await execute(
      child.pool,
      "UPDATE obs SET voided = 1, voided_by = ?, date_voided = '2026-03-09 11:00:00', void_reason = 'entered twice' WHERE uuid = ?",
      [admin, OBS.obs11],
    );
    await execute(child.pool, 'DELETE FROM obs WHERE uuid = ?', [OBS.obs16]);
    await execute(parent.pool, 'DELETE FROM obs WHERE uuid = ?', [OBS.obs10]);
    for (const o of [OBS.obs9, OBS.obs10, OBS.obs11, OBS.obs16]) expected.delete('obs', o);

    await tree.sync(child, parent);
    await expectConverged();
  });
});
