import { queryRows, type PoolConnection } from '../db/pool.js';
import { q } from '../db/ident.js';
import { SyncError } from '../errors.js';
import { CLONE_INCOMPLETE_KEY, META_TABLE } from './snapshot.js';

/*
 * What a target database holds before a clone writes to it (issue 6, "Before overwriting"):
 * counted for the sentence that refuses it, checked for other applications connected to it, and
 * emptied when the person said --replace (after the old contents were saved, see backup.ts).
 */

export interface DatabaseContents {
  tables: number;
  /** rows of all its tables, counted exactly */
  rows: number;
  views: number;
  routines: number;
  events: number;
  /** it holds a clone that never finished (ClinicSync's marker) */
  unfinishedClone: boolean;
  /** the node id of the ClinicSync node it holds, where it holds one */
  nodeId: string | null;
  /**
   * it holds only an empty marker table: a clone stopped between making that table and marking
   * it (a clone this home started may take it as empty)
   */
  bareMarkerTable: boolean;
}

export async function databaseContents(
  conn: PoolConnection,
  database: string,
): Promise<DatabaseContents> {
  const tables = await queryRows(
    conn,
    `SELECT TABLE_NAME AS t, TABLE_TYPE AS k FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`,
    [database],
  );
  const base = tables.filter((r) => r.k !== 'VIEW').map((r) => String(r.t));
  let rows = 0;
  for (const t of base) {
    const [n] = await queryRows(conn, `SELECT COUNT(*) AS n FROM ${q(database)}.${q(t)}`);
    rows += Number(n?.n ?? 0);
  }
  const [r] = await queryRows(
    conn,
    'SELECT COUNT(*) AS n FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?',
    [database],
  );
  const [ev] = await queryRows(
    conn,
    'SELECT COUNT(*) AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?',
    [database],
  );
  let unfinishedClone = false;
  let nodeId: string | null = null;
  if (base.includes(META_TABLE)) {
    const meta = await queryRows(
      conn,
      `SELECT k, v FROM ${q(database)}.${q(META_TABLE)} WHERE k IN (?, 'node_id')`,
      [CLONE_INCOMPLETE_KEY],
    );
    unfinishedClone = meta.some((m) => m.k === CLONE_INCOMPLETE_KEY);
    nodeId = String(meta.find((m) => m.k === 'node_id')?.v ?? '') || null;
  }
  return {
    bareMarkerTable:
      base.length === 1 &&
      base[0] === META_TABLE &&
      rows === 0 &&
      tables.length === 1 &&
      !Number(r?.n) &&
      !Number(ev?.n),
    tables: base.length,
    rows,
    views: tables.length - base.length,
    routines: Number(r?.n ?? 0),
    events: Number(ev?.n ?? 0),
    unfinishedClone,
    nodeId,
  };
}

export function isEmpty(c: DatabaseContents): boolean {
  return !c.tables && !c.views && !c.routines && !c.events;
}

/** "187 tables with 52,300 rows, 3 views and 2 stored routines" */
export function describeContents(c: DatabaseContents): string {
  const parts: string[] = [];
  if (c.tables) parts.push(`${counted(c.tables, 'table')} with ${counted(c.rows, 'row')}`);
  if (c.views) parts.push(counted(c.views, 'view'));
  if (c.routines) parts.push(counted(c.routines, 'stored routine'));
  if (c.events) parts.push(counted(c.events, 'event'));
  return parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}` : parts[0]!;
}

/** The sentence that refuses a database holding anything, naming what it holds. */
export function notEmptyError(database: string, c: DatabaseContents): SyncError {
  const what = describeContents(c);
  if (c.unfinishedClone) {
    return new SyncError(
      'state',
      `The database ${database} holds a clone that did not finish (${what}), started from another ClinicSync folder; run clone again with that folder (--home), or add --replace to start over here.`,
    );
  }
  return new SyncError(
    'state',
    `The database ${database} already holds ${what}; clone needs an empty database. To replace them, add --replace: what it holds is first saved to a dump file in this clinic's ClinicSync folder.`,
  );
}

export interface OtherConnection {
  user: string;
  host: string;
}

/**
 * Other sessions using the database (OpenMRS, a reporting tool, another ClinicSync), from the
 * process list. A user without the PROCESS privilege sees only its own user's sessions.
 */
export async function otherConnections(
  conn: PoolConnection,
  database: string,
): Promise<OtherConnection[]> {
  const rows = await queryRows(
    conn,
    `SELECT USER AS u, HOST AS h FROM information_schema.PROCESSLIST
      WHERE DB = ? AND ID <> CONNECTION_ID() AND COMMAND NOT IN ('Daemon', 'Binlog Dump')`,
    [database],
  );
  return rows.map((r) => ({ user: String(r.u), host: String(r.h).replace(/:\d+$/, '') }));
}

export function inUseError(database: string, others: OtherConnection[]): SyncError {
  const who = [...new Set(others.map((o) => `${o.user}@${o.host}`))].join(', ');
  return new SyncError(
    'state',
    `Stop OpenMRS first: ${counted(others.length, 'other connection')} (${who}) ${others.length === 1 ? 'is' : 'are'} using the database ${database}, and replacing it under them would break them. Stop OpenMRS (or whatever uses it), then run the clone again.`,
  );
}

/**
 * Drops everything in the database: views, routines, events, tables (with their triggers). The
 * marker table goes last, so a clone cut short while clearing stays marked as unfinished.
 */
export async function clearDatabase(conn: PoolConnection, database: string): Promise<void> {
  await conn.query('SET SESSION FOREIGN_KEY_CHECKS = 0');
  const names = async (sql: string) =>
    (await queryRows(conn, sql, [database])).map((r) => ({ n: String(r.n), t: String(r.t) }));
  for (const v of await names(
    'SELECT TABLE_NAME AS n, 0 AS t FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?',
  )) {
    await conn.query(`DROP VIEW IF EXISTS ${q(database)}.${q(v.n)}`);
  }
  for (const r of await names(
    'SELECT ROUTINE_NAME AS n, ROUTINE_TYPE AS t FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?',
  )) {
    const kind = r.t === 'FUNCTION' ? 'FUNCTION' : 'PROCEDURE';
    await conn.query(`DROP ${kind} IF EXISTS ${q(database)}.${q(r.n)}`);
  }
  for (const e of await names(
    'SELECT EVENT_NAME AS n, 0 AS t FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?',
  )) {
    await conn.query(`DROP EVENT IF EXISTS ${q(database)}.${q(e.n)}`);
  }
  const tables = await names(
    "SELECT TABLE_NAME AS n, 0 AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW'",
  );
  for (const t of tables.filter((t) => t.n !== META_TABLE)) {
    await conn.query(`DROP TABLE IF EXISTS ${q(database)}.${q(t.n)}`);
  }
  await conn.query(`DROP TABLE IF EXISTS ${q(database)}.${q(META_TABLE)}`);
  await conn.query('SET SESSION FOREIGN_KEY_CHECKS = 1');
}

export function counted(n: number, noun: string): string {
  return `${n.toLocaleString('en-US')} ${noun}${n === 1 ? '' : 's'}`;
}
