import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';

/** Keys of clinicsync_meta, the node's small durable facts. */
export type MetaKey =
  | 'schema_version'
  | 'node_id'
  | 'incarnation'
  | 'name'
  | 'role'
  | 'seq'
  | 'hlc'
  | 'capture_paused'
  | 'schema_shape'
  /** present while a clone is being loaded or after one failed: the node must not be used */
  | 'clone_incomplete'
  /** the log position up to which received changes were queued for OpenMRS to refresh */
  | 'openmrs_refresh_lsn'
  /** a sentence while the running OpenMRS could not be refreshed */
  | 'openmrs_refresh_problem';

export async function getMeta(db: Queryable, key: MetaKey): Promise<string | null> {
  const rows = await queryRows(db, 'SELECT v FROM clinicsync_meta WHERE k = ?', [key]);
  return rows.length ? String(rows[0]!.v) : null;
}

/** Reads a value and locks its row until the transaction ends (for counters). */
export async function getMetaForUpdate(db: Queryable, key: MetaKey): Promise<string | null> {
  const rows = await queryRows(db, 'SELECT v FROM clinicsync_meta WHERE k = ? FOR UPDATE', [key]);
  return rows.length ? String(rows[0]!.v) : null;
}

export async function setMeta(db: Queryable, key: MetaKey, value: string): Promise<void> {
  await execute(
    db,
    'INSERT INTO clinicsync_meta (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)',
    [key, value],
  );
}
