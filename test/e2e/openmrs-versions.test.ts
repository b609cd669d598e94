import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows, type Queryable } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { readSoftware } from '../../src/engine/openmrs/versions.js';
import { loadSampleDb } from '../helpers/db.js';
import { createPatient, type NewPatient } from '../helpers/openmrs.js';
import { parkedOn } from '../helpers/state.js';
import { Tree } from '../helpers/tree.js';

/**
 * Issue 12, "Done when", third point: two nodes whose `obs` tables differ by one column (the
 * district was upgraded to an OpenMRS that added obs.interpretation; the clinic was not). Every
 * other table flows; obs waits on both sides with a sentence naming both versions; once the
 * clinic's obs has the column too, the waiting obs flow both ways and none is lost.
 */

const UPGRADED = 'org/openmrs/liquibase/updates/liquibase-update-to-latest-2.3.x.xml';
const OLDER = 'org/openmrs/liquibase/updates/liquibase-update-to-latest-2.2.x.xml';

/** What OpenMRS's upgrade leaves behind: its change sets recorded under the release's file. */
async function ranChangeSets(db: Queryable, file: string, id: string): Promise<void> {
  await execute(
    db,
    `INSERT INTO liquibasechangelog (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, EXECTYPE)
     VALUES (?, 'openmrs', ?, '2026-01-05 10:00:00', 1, 'EXECUTED')`,
    [id, file],
  );
}

async function obsUuids(node: SyncNode): Promise<string[]> {
  const rows = await queryRows(node.pool, 'SELECT uuid FROM obs ORDER BY uuid');
  return rows.map((r) => String(r.uuid));
}

async function hasPerson(node: SyncNode, uuid: string): Promise<boolean> {
  return (await queryRows(node.pool, 'SELECT 1 FROM person WHERE uuid = ?', [uuid])).length > 0;
}

describe('nodes on different OpenMRS versions', () => {
  let tree: Tree;
  let district: SyncNode;
  let clinic: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    // The OpenMRS preset: each server keeps its own record of the upgrades it ran.
    district = await tree.root(await loadSampleDb('openmrs-testdata'), 'district', {
      preset: 'openmrs',
    });
    clinic = await tree.clone(district, 'clinic');
    await ranChangeSets(district.pool, OLDER, '20190101-0001');
    await ranChangeSets(clinic.pool, OLDER, '20190101-0001');
  });
  afterEach(async () => tree.close());

  it('reads the OpenMRS release line and module table versions from the database', async () => {
    await ranChangeSets(district.pool, UPGRADED, '20200101-0001');
    await execute(
      district.pool,
      "INSERT INTO global_property (property, property_value, uuid) VALUES ('idgen.database_version', '4.5.0', 'e6a1a6a0-0000-4000-8000-000000000001'), ('idgen.started', 'true', 'e6a1a6a0-0000-4000-8000-000000000002')",
    );
    expect(await readSoftware(district.pool)).toEqual({
      openmrs: '2.3.x',
      modules: { idgen: '4.5.0' },
    });
    expect(await readSoftware(clinic.pool)).toEqual({ openmrs: '2.2.x', modules: {} });
  });

  it('holds back only obs while the two obs tables differ, then lets it flow with nothing lost', async () => {
    // The district is upgraded: OpenMRS's update adds a column to obs.
    await ranChangeSets(district.pool, UPGRADED, '20200101-0001');
    await execute(district.pool, 'ALTER TABLE obs ADD COLUMN interpretation VARCHAR(32) NULL');
    const before = await obsUuids(district);

    const atDistrict = await createPatient(district.pool, patient('Amina', '100-8'));
    await execute(district.pool, "UPDATE obs SET interpretation = 'NORMAL' WHERE uuid = ?", [
      atDistrict.obsWeight,
    ]);
    const atClinic = await createPatient(clinic.pool, patient('Baraka', '200-6'));
    await tree.sync(clinic, district);

    // Everything but obs went both ways: the patients, their visits and encounters.
    for (const node of [district, clinic]) {
      expect(await hasPerson(node, atDistrict.person)).toBe(true);
      expect(await hasPerson(node, atClinic.person)).toBe(true);
      const enc = await queryRows(node.pool, 'SELECT uuid FROM encounter WHERE uuid IN (?, ?)', [
        atDistrict.encounter,
        atClinic.encounter,
      ]);
      expect(enc).toHaveLength(2);
    }
    // The obs wait where they arrived, with the reason in words.
    expect(await obsUuids(district)).toEqual(sorted([...before, ...obsOf(atDistrict)]));
    expect(await obsUuids(clinic)).toEqual(sorted([...before, ...obsOf(atClinic)]));
    const clinicSays =
      'The main server (district) runs OpenMRS 2.3.x; this clinic runs 2.2.x. Upgrade this clinic, then sync. Until then the obs table waits on both sides; everything else keeps flowing and nothing is lost.';
    const districtSays =
      'clinic runs OpenMRS 2.2.x; this server runs 2.3.x. Upgrade clinic, then sync. Until then the obs table waits on both sides; everything else keeps flowing and nothing is lost.';
    expect(await parkedOn(clinic)).toEqual(obsOf(atDistrict).map(() => `obs: ${clinicSays}`));
    expect(await parkedOn(district)).toEqual(obsOf(atClinic).map(() => `obs: ${districtSays}`));
    expect((await clinic.status()).schemaWarning).toBe(clinicSays);
    expect((await district.status()).schemaWarning).toBe(districtSays);

    // The clinic is upgraded too; its engine notices the new column on its next exchange.
    await ranChangeSets(clinic.pool, UPGRADED, '20200101-0001');
    await execute(clinic.pool, 'ALTER TABLE obs ADD COLUMN interpretation VARCHAR(32) NULL');
    await tree.sync(clinic, district);

    const all = sorted([...before, ...obsOf(atDistrict), ...obsOf(atClinic)]);
    expect(await obsUuids(district)).toEqual(all);
    expect(await obsUuids(clinic)).toEqual(all);
    for (const node of [district, clinic]) {
      expect(await parkedOn(node)).toEqual([]);
      expect((await node.status()).schemaWarning).toBeNull();
      const rows = await queryRows(
        node.pool,
        `SELECT o.uuid, o.interpretation, CAST(o.value_numeric AS CHAR) AS num, o.value_text AS txt,
                e.uuid AS enc, p.uuid AS person
           FROM obs o JOIN encounter e ON e.encounter_id = o.encounter_id
           JOIN person p ON p.person_id = o.person_id
          WHERE o.uuid IN (?, ?, ?, ?) ORDER BY o.uuid`,
        [atDistrict.obsWeight, atDistrict.obsText, atClinic.obsWeight, atClinic.obsText],
      );
      expect(rows).toEqual(
        [
          {
            uuid: atDistrict.obsWeight,
            interpretation: 'NORMAL',
            num: '61.5',
            txt: null,
            enc: atDistrict.encounter,
            person: atDistrict.person,
          },
          {
            uuid: atDistrict.obsText,
            interpretation: null,
            num: null,
            txt: 'ugali',
            enc: atDistrict.encounter,
            person: atDistrict.person,
          },
          {
            uuid: atClinic.obsWeight,
            interpretation: null,
            num: '61.5',
            txt: null,
            enc: atClinic.encounter,
            person: atClinic.person,
          },
          {
            uuid: atClinic.obsText,
            interpretation: null,
            num: null,
            txt: 'ugali',
            enc: atClinic.encounter,
            person: atClinic.person,
          },
        ].sort((a, b) => (a.uuid < b.uuid ? -1 : 1)),
      );
    }
  });
});

function patient(given: string, identifier: string) {
  return {
    given,
    family: 'Test',
    gender: 'F' as const,
    birthdate: '1990-01-01',
    identifier,
    at: '2026-03-02 09:15:00',
    weightKg: '61.5',
    favoriteFood: 'ugali',
  };
}

function obsOf(p: NewPatient): string[] {
  return [p.obsWeight, p.obsCoded, p.obsText];
}

function sorted(list: string[]): string[] {
  return [...list].sort();
}
