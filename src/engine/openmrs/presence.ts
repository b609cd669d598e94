import type { Queryable } from '../db/pool.js';
import { hasTables } from '../db/schema.js';

/** Tables every OpenMRS database has: a database holding all of them is taken to be OpenMRS. */
const OPENMRS_CORE_TABLES = ['patient', 'person', 'encounter', 'obs'];

/** Whether a database whose tables are `names` holds OpenMRS. */
export function namesOpenmrs(names: Iterable<string>): boolean {
  const here = new Set(names);
  return OPENMRS_CORE_TABLES.every((t) => here.has(t));
}

/** Whether the connected database holds OpenMRS. */
export async function holdsOpenmrs(db: Queryable): Promise<boolean> {
  return hasTables(db, OPENMRS_CORE_TABLES);
}
