import {
  addPatients,
  correctName,
  voidObs,
  type AddedPatient,
} from '../../src/demo/openmrsShape.js';
import type { Pool } from '../../src/engine/db/pool.js';

/*
 * The obs-heavy OpenMRS mix the benches carry: new patients registered the way OpenMRS writes
 * them (person, name, patient, identifier, then a visit and a vitals encounter with its obs, each
 * a single-row INSERT in its own transaction), plus name corrections and voided obs on patients
 * made earlier. Every row written is one "record"; `events` lists them in the order made, for
 * the CSV baseline.
 */

export type MixTable =
  'person' | 'person_name' | 'patient' | 'patient_identifier' | 'visit' | 'encounter' | 'obs';

export interface MixEvent {
  op: 'insert' | 'update';
  table: MixTable;
  id: number;
}

export interface Mix {
  patients: AddedPatient[];
  events: MixEvent[];
}

export const KEY: Record<MixTable, string> = {
  person: 'person_id',
  person_name: 'person_name_id',
  patient: 'patient_id',
  patient_identifier: 'patient_identifier_id',
  visit: 'visit_id',
  encounter: 'encounter_id',
  obs: 'obs_id',
};

export interface MixOptions {
  patients: number;
  obsPerEncounter?: number;
  /** name corrections, on the earlier patients' names in turn */
  updates?: number;
  /** obs voided, among the earlier patients' obs in turn */
  voids?: number;
  /** patients made earlier (the updates and voids touch only them) */
  earlier?: AddedPatient[];
  seed?: number;
}

export async function makeMix(pool: Pool, o: MixOptions): Promise<Mix> {
  const added = await addPatients(pool, {
    count: o.patients,
    obsPerEncounter: o.obsPerEncounter ?? 30,
    seed: o.seed ?? 11,
  });
  const events: MixEvent[] = [];
  for (const p of added.patients) {
    events.push(
      { op: 'insert', table: 'person', id: p.personId },
      { op: 'insert', table: 'person_name', id: p.personNameId },
      { op: 'insert', table: 'patient', id: p.personId },
      { op: 'insert', table: 'patient_identifier', id: p.patientIdentifierId },
      { op: 'insert', table: 'visit', id: p.visitId },
      { op: 'insert', table: 'encounter', id: p.encounterId },
      ...p.obsIds.map((id) => ({ op: 'insert' as const, table: 'obs' as const, id })),
    );
  }
  const earlier = o.earlier ?? [];
  const updates = o.updates ?? 0;
  const voids = o.voids ?? 0;
  if ((updates || voids) && !earlier.length) throw new Error('updates need earlier patients');
  for (let i = 0; i < updates; i++) {
    const p = earlier[i % earlier.length]!;
    await correctName(pool, p.personNameId, { familyName: `${p.familyName}-${i}` });
    events.push({ op: 'update', table: 'person_name', id: p.personNameId });
  }
  const obs = earlier.flatMap((p) => p.obsIds);
  if (voids > obs.length) throw new Error('more voids than earlier obs');
  for (let i = 0; i < voids; i++) {
    await voidObs(pool, obs[i]!, 'Entered in error');
    events.push({ op: 'update', table: 'obs', id: obs[i]! });
  }
  return { patients: added.patients, events };
}
