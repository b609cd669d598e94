import { randomUUID } from 'node:crypto';
import type { Pool, PoolConnection, Queryable } from '../../src/engine/db/pool.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { ModelRow, ModelSpec } from './model.js';

/**
 * Rows of the OpenMRS core test dataset (kind `openmrs-testdata`) the end-to-end tests refer to,
 * by uuid, and helpers that write the way OpenMRS itself does: one transaction, local ids looked
 * up from the rows' uuids.
 */
export const OMRS = {
  /** users.user_id 1, "admin" */
  admin: '1010d442-e134-11de-babe-001e378eb67e',
  /** patient_identifier_type "OpenMRS Identification Number" */
  idType: '1a339fe9-38bc-4ab3-b180-320988c0b968',
  /** patient_identifier_type "Old Identification Number" */
  oldIdType: '2f470aa8-1d73-43b7-81b5-01f0c0dfa53c',
  /** location "Xanadu" */
  xanadu: '9356400c-a5a2-4532-8f2b-2361b3446eb8',
  /** location "Never Never Land" */
  neverland: '167ce20c-4785-4285-9119-d197268f7f4a',
  /** visit_type "Return TB Clinic Visit" */
  visitType: '759799ab-c9a5-435e-b671-77773ada74e4',
  /** encounter_type "Emergency" */
  encounterType: '07000be2-26b6-4cce-8b40-866d8435b613',
  /** provider "Test" (person 1) */
  provider: 'c2299800-cca9-11e0-9572-0800200c9a66',
  /** encounter_role "Unknown" */
  encounterRole: 'a0b03050-c99b-11e0-9572-0800200c9a66',
  /** concept 5089 WEIGHT (KG), numeric */
  weight: 'c607c80f-1ea9-4da3-bb88-6276ce8868dd',
  /** concept 21 FOOD ASSISTANCE FOR ENTIRE FAMILY, coded */
  foodAssistance: '95312123-e0c2-466d-b6b1-cb6e990d0d65',
  /** concept 7 YES, an answer of concept 21 */
  yes: 'b055abd8-a420-4a11-8b98-02ee170a7b54',
  /** concept 19 FAVORITE FOOD, NON-CODED, text */
  favoriteFood: '96408258-000b-424e-af1a-403919332938',
  /** concept_datatype Text */
  textType: '8d4a4ab4-c2cc-11de-8d13-0010c6dffd0f',
  /** concept_class Question */
  questionClass: 'a82ef63c-e4e4-48d6-988a-fdd74d7541a7',
  /** person 7, patient "Collet Test Chebaskwony" */
  collet: '5946f880-b197-400b-9caa-a3c661d23041',
  /** person 8, patient "Anet Test Oloo" */
  anet: '8adf539e-4b5a-47aa-80c0-ba1025c957fa',
  /** person 6, patient */
  person6: 'a7e04421-525f-442f-8138-05b619d16def',
} as const;

/** The tables the OpenMRS end-to-end tests model. */
export const OPENMRS_MODEL: ModelSpec = {
  tables: [
    'users',
    'person',
    'person_name',
    'patient',
    'patient_identifier',
    'visit',
    'encounter',
    'encounter_provider',
    'obs',
    'concept',
    'concept_name',
    'provider',
  ],
};

const PK: Record<string, string> = {
  users: 'user_id',
  person: 'person_id',
  person_name: 'person_name_id',
  patient_identifier: 'patient_identifier_id',
  patient_identifier_type: 'patient_identifier_type_id',
  location: 'location_id',
  visit: 'visit_id',
  visit_type: 'visit_type_id',
  encounter: 'encounter_id',
  encounter_type: 'encounter_type_id',
  encounter_role: 'encounter_role_id',
  provider: 'provider_id',
  concept: 'concept_id',
  concept_name: 'concept_name_id',
  concept_datatype: 'concept_datatype_id',
  concept_class: 'concept_class_id',
  obs: 'obs_id',
};

/** The local id of the row of `table` with this uuid on this node. */
export async function idOf(db: Queryable, table: string, uuid: string): Promise<number> {
  const pk = PK[table];
  if (!pk) throw new Error(`idOf: unknown table ${table}`);
  const rows = await queryRows(db, `SELECT \`${pk}\` AS id FROM \`${table}\` WHERE uuid = ?`, [
    uuid,
  ]);
  if (rows.length !== 1) throw new Error(`idOf: ${rows.length} rows of ${table} with uuid ${uuid}`);
  return Number(rows[0]!.id);
}

/** Runs fn in one transaction, as OpenMRS saves an object graph in one Hibernate session. */
export async function transaction<T>(pool: Pool, fn: (c: PoolConnection) => Promise<T>) {
  const conn = await pool.getConnection();
  try {
    await conn.beginTransaction();
    const out = await fn(conn);
    await conn.commit();
    return out;
  } catch (e) {
    await conn.rollback().catch(() => undefined);
    throw e;
  } finally {
    conn.release();
  }
}

/** Inserts a row given column → value; returns the new auto-increment id. */
export async function insert(
  db: Queryable,
  table: string,
  values: Record<string, string | number | null>,
): Promise<number> {
  const cols = Object.keys(values);
  const res = await execute(
    db,
    `INSERT INTO \`${table}\` (${cols.map((c) => `\`${c}\``).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
    cols.map((c) => values[c]),
  );
  return res.insertId;
}

/** One row the test expects, in the model's terms (foreign keys as the referenced uuids). */
export interface ExpectedRow {
  table: string;
  key: string;
  row: ModelRow;
}

export interface PatientSpec {
  given: string;
  family: string;
  gender: 'F' | 'M';
  birthdate: string;
  identifier: string;
  /** when the visit started; every row is stamped with it */
  at: string;
  weightKg: string;
  favoriteFood: string;
}

export interface NewPatient {
  person: string;
  name: string;
  identifier: string;
  visit: string;
  encounter: string;
  encounterProvider: string;
  obsWeight: string;
  obsCoded: string;
  obsText: string;
  rows: ExpectedRow[];
}

/**
 * Registers a patient the way OpenMRS's registration and a first consultation do: person,
 * person_name, patient, patient_identifier, visit, encounter with its provider, and three obs
 * (numeric, coded, text). Returns the uuids and the rows the model should then hold.
 */
export async function createPatient(pool: Pool, p: PatientSpec): Promise<NewPatient> {
  const u = {
    person: randomUUID(),
    name: randomUUID(),
    identifier: randomUUID(),
    visit: randomUUID(),
    encounter: randomUUID(),
    encounterProvider: randomUUID(),
    obsWeight: randomUUID(),
    obsCoded: randomUUID(),
    obsText: randomUUID(),
  };
  await transaction(pool, async (c) => {
    const admin = await idOf(c, 'users', OMRS.admin);
    const personId = await insert(c, 'person', {
      gender: p.gender,
      birthdate: p.birthdate,
      birthdate_estimated: 0,
      creator: admin,
      date_created: p.at,
      uuid: u.person,
    });
    await insert(c, 'person_name', {
      preferred: 1,
      person_id: personId,
      given_name: p.given,
      family_name: p.family,
      creator: admin,
      date_created: p.at,
      uuid: u.name,
    });
    await insert(c, 'patient', {
      patient_id: personId,
      creator: admin,
      date_created: p.at,
      allergy_status: 'Unknown',
    });
    const location = await idOf(c, 'location', OMRS.xanadu);
    await insert(c, 'patient_identifier', {
      patient_id: personId,
      identifier: p.identifier,
      identifier_type: await idOf(c, 'patient_identifier_type', OMRS.idType),
      preferred: 1,
      location_id: location,
      creator: admin,
      date_created: p.at,
      uuid: u.identifier,
    });
    const visitId = await insert(c, 'visit', {
      patient_id: personId,
      visit_type_id: await idOf(c, 'visit_type', OMRS.visitType),
      date_started: p.at,
      location_id: location,
      creator: admin,
      date_created: p.at,
      uuid: u.visit,
    });
    const encounterId = await insert(c, 'encounter', {
      encounter_type: await idOf(c, 'encounter_type', OMRS.encounterType),
      patient_id: personId,
      location_id: location,
      encounter_datetime: p.at,
      creator: admin,
      date_created: p.at,
      visit_id: visitId,
      uuid: u.encounter,
    });
    await insert(c, 'encounter_provider', {
      encounter_id: encounterId,
      provider_id: await idOf(c, 'provider', OMRS.provider),
      encounter_role_id: await idOf(c, 'encounter_role', OMRS.encounterRole),
      creator: admin,
      date_created: p.at,
      uuid: u.encounterProvider,
    });
    const obs = {
      person_id: personId,
      encounter_id: encounterId,
      obs_datetime: p.at,
      location_id: location,
      creator: admin,
      date_created: p.at,
    };
    await insert(c, 'obs', {
      ...obs,
      concept_id: await idOf(c, 'concept', OMRS.weight),
      value_numeric: p.weightKg,
      uuid: u.obsWeight,
    });
    await insert(c, 'obs', {
      ...obs,
      concept_id: await idOf(c, 'concept', OMRS.foodAssistance),
      value_coded: await idOf(c, 'concept', OMRS.yes),
      uuid: u.obsCoded,
    });
    await insert(c, 'obs', {
      ...obs,
      concept_id: await idOf(c, 'concept', OMRS.favoriteFood),
      value_text: p.favoriteFood,
      uuid: u.obsText,
    });
  });

  // What the model must hold afterwards, written out independently of the SQL above.
  const stamp = { creator: OMRS.admin, date_created: p.at };
  const unvoided = { voided: '0', voided_by: null, date_voided: null, void_reason: null };
  const obsRow = {
    person_id: u.person,
    encounter_id: u.encounter,
    obs_datetime: p.at,
    location_id: OMRS.xanadu,
    order_id: null,
    obs_group_id: null,
    value_group_id: null,
    value_coded: null,
    value_coded_name_id: null,
    value_drug: null,
    value_datetime: null,
    value_numeric: null,
    value_modifier: null,
    value_text: null,
    value_complex: null,
    previous_version: null,
    ...stamp,
    ...unvoided,
  };
  const rows: ExpectedRow[] = [
    {
      table: 'person',
      key: u.person,
      row: {
        gender: p.gender,
        birthdate: p.birthdate,
        birthdate_estimated: '0',
        dead: '0',
        death_date: null,
        cause_of_death: null,
        changed_by: null,
        date_changed: null,
        uuid: u.person,
        ...stamp,
        ...unvoided,
      },
    },
    {
      table: 'person_name',
      key: u.name,
      row: {
        preferred: '1',
        person_id: u.person,
        given_name: p.given,
        middle_name: null,
        family_name: p.family,
        uuid: u.name,
        ...stamp,
        ...unvoided,
      },
    },
    {
      table: 'patient',
      key: u.person,
      row: { patient_id: u.person, allergy_status: 'Unknown', ...stamp, ...unvoided },
    },
    {
      table: 'patient_identifier',
      key: u.identifier,
      row: {
        patient_id: u.person,
        identifier: p.identifier,
        identifier_type: OMRS.idType,
        preferred: '1',
        location_id: OMRS.xanadu,
        uuid: u.identifier,
        ...stamp,
        ...unvoided,
      },
    },
    {
      table: 'visit',
      key: u.visit,
      row: {
        patient_id: u.person,
        visit_type_id: OMRS.visitType,
        date_started: p.at,
        date_stopped: null,
        location_id: OMRS.xanadu,
        uuid: u.visit,
        ...stamp,
        ...unvoided,
      },
    },
    {
      table: 'encounter',
      key: u.encounter,
      row: {
        encounter_type: OMRS.encounterType,
        patient_id: u.person,
        location_id: OMRS.xanadu,
        form_id: null,
        encounter_datetime: p.at,
        visit_id: u.visit,
        uuid: u.encounter,
        ...stamp,
        ...unvoided,
      },
    },
    {
      table: 'encounter_provider',
      key: u.encounterProvider,
      row: {
        encounter_id: u.encounter,
        provider_id: OMRS.provider,
        encounter_role_id: OMRS.encounterRole,
        uuid: u.encounterProvider,
        ...stamp,
        ...unvoided,
      },
    },
    {
      table: 'obs',
      key: u.obsWeight,
      row: { ...obsRow, concept_id: OMRS.weight, value_numeric: p.weightKg, uuid: u.obsWeight },
    },
    {
      table: 'obs',
      key: u.obsCoded,
      row: { ...obsRow, concept_id: OMRS.foodAssistance, value_coded: OMRS.yes, uuid: u.obsCoded },
    },
    {
      table: 'obs',
      key: u.obsText,
      row: {
        ...obsRow,
        concept_id: OMRS.favoriteFood,
        value_text: p.favoriteFood,
        uuid: u.obsText,
      },
    },
  ];
  return { ...u, rows };
}

/** Creates a bare person with one name (what the registration desk does first). */
export async function createPerson(
  pool: Pool,
  p: { given: string; family: string; gender: 'F' | 'M'; at: string },
): Promise<{ person: string; name: string; personId: number; rows: ExpectedRow[] }> {
  const person = randomUUID();
  const name = randomUUID();
  const personId = await transaction(pool, async (c) => {
    const admin = await idOf(c, 'users', OMRS.admin);
    const id = await insert(c, 'person', {
      gender: p.gender,
      creator: admin,
      date_created: p.at,
      uuid: person,
    });
    await insert(c, 'person_name', {
      preferred: 1,
      person_id: id,
      given_name: p.given,
      family_name: p.family,
      creator: admin,
      date_created: p.at,
      uuid: name,
    });
    return id;
  });
  return {
    person,
    name,
    personId,
    rows: [
      {
        table: 'person',
        key: person,
        row: {
          gender: p.gender,
          creator: OMRS.admin,
          date_created: p.at,
          voided: '0',
          uuid: person,
        },
      },
      {
        table: 'person_name',
        key: name,
        row: {
          person_id: person,
          given_name: p.given,
          family_name: p.family,
          creator: OMRS.admin,
          voided: '0',
          uuid: name,
        },
      },
    ],
  };
}

/** Local ids of the auto-increment tables pushed far apart, so a copied local id points nowhere. */
export async function shiftLocalIds(db: Queryable, by: number): Promise<void> {
  for (const [table, pk] of Object.entries(PK)) {
    const [r] = await queryRows(db, `SELECT COALESCE(MAX(\`${pk}\`), 0) AS m FROM \`${table}\``);
    await execute(db, `ALTER TABLE \`${table}\` AUTO_INCREMENT = ${Number(r!.m) + by}`);
  }
}
