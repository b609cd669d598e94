import type { Pool, PoolConnection } from '../../src/engine/db/pool.js';
import {
  ADMIN_USER_ID,
  CONCEPTS,
  ENCOUNTER_TYPE_VITALS,
  IDENTIFIER_TYPE_OPENMRS_ID,
  LOCATIONS,
  VISIT_TYPE_FACILITY,
  createOpenmrsShape,
  openmrsId,
  sqlDateTime,
} from '../../src/demo/openmrsShape.js';

/*
 * A large OpenMRS-shaped database, made fast: the demo's tables and metadata
 * (src/demo/openmrsShape.ts), then patients with their visits, vitals encounters and obs written
 * with multi-row INSERTs of explicit ids, in key order, as a dump would load them. Repeatable for
 * a given seed.
 */

export interface GenerateOptions {
  patients: number;
  /** visits per patient, each with one vitals encounter */
  encountersPerPatient: number;
  obsPerEncounter: number;
  seed?: number;
  onProgress?: (line: string) => void;
}

export interface Generated {
  rows: Record<string, number>;
  totalRows: number;
}

const ROWS_PER_INSERT = 1_000;
const FIRST_ID = 100;
const VITALS = Object.values(CONCEPTS);
const GIVEN = ['Aline', 'Jean', 'Claudine', 'Théoneste', 'Espérance', 'Moïse', 'Grace', 'Eric'];
const FAMILY = ['Uwimana', 'Niyonzima', 'Habimana', 'Ingabire', 'Mugisha', 'Banda', 'Phiri'];
const NOTES = [
  'Cough for three days, no fever at home.',
  'Follow-up visit; feels better.',
  'Headache and fatigue since last week — referred to the lab.',
];

export async function generateOpenmrs(pool: Pool, opts: GenerateOptions): Promise<Generated> {
  await createOpenmrsShape(pool);
  const random = mulberry32(opts.seed ?? 20_260_301);
  const uuid = () => {
    let h = '';
    for (let i = 0; i < 32; i++) h += Math.floor(random() * 16).toString(16);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20)}`;
  };
  const rows: Record<string, number> = {};
  const conn = await pool.getConnection();
  try {
    // Each table is written in its own batches, so a row may come before the one it refers to.
    await conn.query('SET SESSION FOREIGN_KEY_CHECKS = 0');
    const batches = new Map<string, { cols: string[]; rows: unknown[][] }>();
    const add = async (table: string, cols: string[], row: unknown[]) => {
      let b = batches.get(table);
      if (!b) batches.set(table, (b = { cols, rows: [] }));
      b.rows.push(row);
      rows[table] = (rows[table] ?? 0) + 1;
      if (b.rows.length >= ROWS_PER_INSERT) await flush(conn, table, b);
    };
    const start = Date.UTC(2018, 0, 1);
    let visitId = 1;
    let obsId = 1;
    for (let i = 0; i < opts.patients; i++) {
      const id = FIRST_ID + i;
      const at = new Date(start + i * 17 * 60_000);
      const created = sqlDateTime(at);
      const gender = random() < 0.5 ? 'F' : 'M';
      const birth = new Date(at.getTime() - Math.floor(random() * 70 * 365) * 86_400_000);
      await add(
        'person',
        ['person_id', 'gender', 'birthdate', 'creator', 'date_created', 'uuid'],
        [id, gender, birth.toISOString().slice(0, 10), ADMIN_USER_ID, created, uuid()],
      );
      await add(
        'person_name',
        [
          'person_name_id',
          'preferred',
          'person_id',
          'given_name',
          'family_name',
          'creator',
          'date_created',
          'uuid',
        ],
        [id, 1, id, pick(GIVEN, random), pick(FAMILY, random), ADMIN_USER_ID, created, uuid()],
      );
      await add(
        'patient',
        ['patient_id', 'creator', 'date_created', 'allergy_status'],
        [id, ADMIN_USER_ID, created, 'Unknown'],
      );
      await add(
        'patient_identifier',
        [
          'patient_identifier_id',
          'patient_id',
          'identifier',
          'identifier_type',
          'preferred',
          'location_id',
          'creator',
          'date_created',
          'uuid',
        ],
        [
          id,
          id,
          openmrsId(810_000 + i),
          IDENTIFIER_TYPE_OPENMRS_ID,
          1,
          LOCATIONS.registrationDesk,
          ADMIN_USER_ID,
          created,
          uuid(),
        ],
      );
      for (let v = 0; v < opts.encountersPerPatient; v++) {
        const seen = sqlDateTime(new Date(at.getTime() + v * 30 * 86_400_000));
        await add(
          'visit',
          [
            'visit_id',
            'patient_id',
            'visit_type_id',
            'date_started',
            'location_id',
            'creator',
            'date_created',
            'uuid',
          ],
          [
            visitId,
            id,
            VISIT_TYPE_FACILITY,
            seen,
            LOCATIONS.outpatientClinic,
            ADMIN_USER_ID,
            seen,
            uuid(),
          ],
        );
        await add(
          'encounter',
          [
            'encounter_id',
            'encounter_type',
            'patient_id',
            'location_id',
            'encounter_datetime',
            'creator',
            'date_created',
            'visit_id',
            'uuid',
          ],
          [
            visitId,
            ENCOUNTER_TYPE_VITALS,
            id,
            LOCATIONS.outpatientClinic,
            seen,
            ADMIN_USER_ID,
            seen,
            visitId,
            uuid(),
          ],
        );
        for (let k = 0; k < opts.obsPerEncounter; k++) {
          const concept = VITALS[k % VITALS.length]!;
          const text = concept === CONCEPTS.encounterNote;
          await add(
            'obs',
            [
              'obs_id',
              'person_id',
              'concept_id',
              'encounter_id',
              'obs_datetime',
              'location_id',
              'value_numeric',
              'value_text',
              'creator',
              'date_created',
              'uuid',
            ],
            [
              obsId++,
              id,
              concept,
              visitId,
              seen,
              LOCATIONS.outpatientClinic,
              text ? null : Math.round(random() * 1500) / 10,
              text ? pick(NOTES, random) : null,
              ADMIN_USER_ID,
              seen,
              uuid(),
            ],
          );
        }
        visitId++;
      }
      if ((i + 1) % 1000 === 0) opts.onProgress?.(`${i + 1} of ${opts.patients} patients`);
    }
    for (const [table, b] of batches) await flush(conn, table, b);
  } finally {
    conn.destroy();
  }
  return { rows, totalRows: Object.values(rows).reduce((a, b) => a + b, 0) };
}

/** Writes a table's pending rows in one INSERT (the tables are the demo's, the names fixed). */
async function flush(
  conn: PoolConnection,
  table: string,
  b: { cols: string[]; rows: unknown[][] },
): Promise<void> {
  if (!b.rows.length) return;
  const one = `(${b.cols.map(() => '?').join(', ')})`;
  await conn.query(
    `INSERT INTO ${table} (${b.cols.join(', ')}) VALUES ${b.rows.map(() => one).join(', ')}`,
    b.rows.flat(),
  );
  b.rows = [];
}

function pick<T>(list: readonly T[], random: () => number): T {
  return list[Math.floor(random() * list.length)]!;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
