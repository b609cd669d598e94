import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { ihash } from '../identity/identities.js';
import type { Stamp } from './rowState.js';

/**
 * A row's tombstone holds the clock of its latest delete, from whichever node it came; it is never
 * lowered and never removed by a later insert (DESIGN §6): the row exists while its latest insert
 * is later, and updates made upon a copy it deleted stay beaten.
 *
 * For `ON DUPLICATE KEY UPDATE`: keeps the later of the held and the offered stamp. The origin is
 * assigned first because MariaDB evaluates the assignments in order, each seeing the ones before.
 */
export const LATER_TOMBSTONE = `origin = IF(VALUES(hlc) > hlc OR (VALUES(hlc) = hlc AND VALUES(origin) > origin), VALUES(origin), origin),
  hlc = IF(VALUES(hlc) > hlc, VALUES(hlc), hlc)`;

export async function readTombstone(
  db: Queryable,
  table: string,
  ident: string,
): Promise<Stamp | null> {
  const [t] = await queryRows(
    db,
    'SELECT hlc, origin FROM clinicsync_tombstone WHERE tbl = ? AND ihash = ?',
    [table, ihash(ident)],
  );
  return t ? { hlc: BigInt(String(t.hlc)), origin: String(t.origin) } : null;
}

export async function raiseTombstone(
  db: Queryable,
  table: string,
  ident: string,
  stamp: Stamp,
): Promise<void> {
  await execute(
    db,
    `INSERT INTO clinicsync_tombstone (tbl, ihash, ident, hlc, origin, at)
     VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP()) ON DUPLICATE KEY UPDATE ${LATER_TOMBSTONE}`,
    [table, ihash(ident), ident, stamp.hlc.toString(), stamp.origin],
  );
}
