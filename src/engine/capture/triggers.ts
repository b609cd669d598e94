import { createHash } from 'node:crypto';
import { escape } from 'mysql2';
import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import { OWN_PREFIX, type Table } from '../db/schema.js';
import { hasKey, keySql } from './rowSql.js';

/**
 * Identity-only capture triggers (DESIGN §3). They name the table, its primary-key columns and,
 * on delete, its uuid: never an ordinary column, so an upgrade that drops or renames columns
 * cannot break the application's writes. A keyless table's trigger names no column at all; the
 * engine diffs such tables whole. Writes made by ClinicSync itself set @clinicsync_applying and
 * are not captured again.
 */

type Event = 'INSERT' | 'UPDATE' | 'DELETE';
const SUFFIX: Record<Event, string> = { INSERT: 'ai', UPDATE: 'au', DELETE: 'ad' };

export function triggerName(table: string, event: Event): string {
  const safe = table.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 40);
  const tag = createHash('sha1').update(table).digest('hex').slice(0, 6);
  return `${OWN_PREFIX}${safe}_${tag}_${SUFFIX[event]}`;
}

function captureInsert(t: Table, event: Event): string {
  const tbl = escape(t.name);
  if (!hasKey(t)) {
    return `INSERT INTO clinicsync_capture (tbl, op, at) VALUES (${tbl}, 'T', NOW(6))`;
  }
  if (event === 'INSERT') {
    return `INSERT INTO clinicsync_capture (tbl, op, lkey, at) VALUES (${tbl}, 'I', ${keySql(t, 'NEW')}, NOW(6))`;
  }
  if (event === 'UPDATE') {
    const oldKey = keySql(t, 'OLD');
    const newKey = keySql(t, 'NEW');
    return `INSERT INTO clinicsync_capture (tbl, op, lkey, old_lkey, at)
            VALUES (${tbl}, 'U', ${newKey}, IF(${newKey} = ${oldKey}, NULL, ${oldKey}), NOW(6))`;
  }
  const uuid = t.columns.some((c) => c.name === 'uuid') ? 'OLD.`uuid`' : 'NULL';
  return `INSERT INTO clinicsync_capture (tbl, op, lkey, old_uuid, at) VALUES (${tbl}, 'D', ${keySql(t, 'OLD')}, ${uuid}, NOW(6))`;
}

export function triggerDdl(t: Table, event: Event): string {
  return `CREATE TRIGGER ${q(triggerName(t.name, event))} AFTER ${event} ON ${q(t.name)} FOR EACH ROW
BEGIN
  IF @clinicsync_applying IS NULL THEN
    ${captureInsert(t, event)};
  END IF;
END`;
}

const EVENTS: Event[] = ['INSERT', 'UPDATE', 'DELETE'];

/**
 * (Re)creates the three triggers of one table. MySQL 5.6 allows one trigger per table and event, so
 * a table whose application already has an AFTER trigger for an event cannot be captured there on
 * 5.6; MariaDB 10.3+ and MySQL 5.7+ allow several (ours run after the application's).
 */
export async function installTriggers(db: Queryable, t: Table): Promise<void> {
  for (const event of EVENTS) {
    await execute(db, `DROP TRIGGER IF EXISTS ${q(triggerName(t.name, event))}`);
    await execute(db, triggerDdl(t, event));
  }
}

export async function dropTriggers(db: Queryable, table: string): Promise<void> {
  for (const event of EVENTS)
    await execute(db, `DROP TRIGGER IF EXISTS ${q(triggerName(table, event))}`);
}

/** Every ClinicSync trigger present in the current database, by table. */
export async function installedTriggers(db: Queryable): Promise<Map<string, string[]>> {
  const rows = await queryRows(
    db,
    `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS
      WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'clinicsync\\_%'`,
  );
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const table = String(r.EVENT_OBJECT_TABLE);
    out.set(table, [...(out.get(table) ?? []), String(r.TRIGGER_NAME)]);
  }
  return out;
}
