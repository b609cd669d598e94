import { explainDbError, execute, openPool, queryRows } from '../db/pool.js';
import type { PoolConnection } from '../db/pool.js';
import { q } from '../db/ident.js';
import { isOwnName } from '../db/schema.js';
import type { DbTarget } from '../db/url.js';
import { SyncError } from '../errors.js';

export interface UninstallResult {
  /** ClinicSync triggers dropped */
  triggers: number;
  /** ClinicSync tables (and views) dropped */
  tables: number;
}

/** How long a DROP waits for a table that a long transaction holds, before saying so. */
const LOCK_WAIT_SECONDS = 60;

/**
 * Removes everything ClinicSync put in the database (DESIGN §3): its triggers first, so the
 * application's writes never meet a trigger whose table is gone, then its events, routines, views
 * and tables. Everything whose name starts with `clinicsync_` (in any case) goes; nothing else is
 * touched. Running it again finds nothing and returns zeros.
 */
export async function uninstall(target: DbTarget): Promise<UninstallResult> {
  const pool = openPool(target, { connectionLimit: 1 });
  try {
    const conn = await pool.getConnection();
    try {
      return await removeAll(conn, target.database);
    } finally {
      conn.release();
    }
  } catch (e) {
    throw e instanceof SyncError ? e : explainUninstallError(e, target);
  } finally {
    await pool.end().catch(() => undefined);
  }
}

async function removeAll(conn: PoolConnection, db: string): Promise<UninstallResult> {
  await execute(conn, `SET SESSION lock_wait_timeout = ${LOCK_WAIT_SECONDS}`);
  const own = (rows: { [k: string]: unknown }[], col: string) =>
    rows.map((r) => String(r[col])).filter(isOwnName);

  const triggers = own(
    await queryRows(
      conn,
      'SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ?',
      [db],
    ),
    'n',
  );
  for (const t of triggers) await execute(conn, `DROP TRIGGER IF EXISTS ${q(db)}.${q(t)}`);

  let events: string[] = [];
  try {
    events = own(
      await queryRows(
        conn,
        'SELECT EVENT_NAME AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?',
        [db],
      ),
      'n',
    );
  } catch {
    // Servers built without the event scheduler have no EVENTS table: nothing to remove.
  }
  for (const ev of events) await execute(conn, `DROP EVENT IF EXISTS ${q(db)}.${q(ev)}`);

  const routines = await queryRows(
    conn,
    'SELECT ROUTINE_NAME AS n, ROUTINE_TYPE AS t FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?',
    [db],
  );
  for (const r of routines) {
    const name = String(r.n);
    const type = String(r.t).toUpperCase();
    if (!isOwnName(name) || (type !== 'PROCEDURE' && type !== 'FUNCTION')) continue;
    await execute(conn, `DROP ${type} IF EXISTS ${q(db)}.${q(name)}`);
  }

  const relations = (
    await queryRows(
      conn,
      'SELECT TABLE_NAME AS n, TABLE_TYPE AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
      [db],
    )
  ).filter((r) => isOwnName(String(r.n)));
  const views = relations.filter((r) => r.t === 'VIEW').map((r) => String(r.n));
  const tables = relations.filter((r) => r.t !== 'VIEW').map((r) => String(r.n));
  if (views.length) {
    await execute(conn, `DROP VIEW IF EXISTS ${views.map((v) => `${q(db)}.${q(v)}`).join(', ')}`);
  }
  if (tables.length) {
    // ClinicSync's tables may reference one another; one statement with checks off drops them all.
    await execute(conn, 'SET SESSION foreign_key_checks = 0');
    try {
      await execute(
        conn,
        `DROP TABLE IF EXISTS ${tables.map((t) => `${q(db)}.${q(t)}`).join(', ')}`,
      );
    } finally {
      await execute(conn, 'SET SESSION foreign_key_checks = 1');
    }
  }
  return { triggers: triggers.length, tables: tables.length + views.length };
}

function explainUninstallError(e: unknown, t: DbTarget): SyncError {
  const code = (e as { code?: string }).code;
  if (code === 'ER_LOCK_WAIT_TIMEOUT') {
    return new SyncError(
      'database',
      `A long-running transaction in ${t.database} kept ClinicSync's triggers or tables from being removed; try again when the application is idle.`,
      { cause: e },
    );
  }
  if (code === 'ER_TABLEACCESS_DENIED_ERROR' || code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR') {
    return new SyncError(
      'privileges',
      `User "${t.user}" may not remove ClinicSync's triggers and tables from ${t.database}; run uninstall as a user with the TRIGGER and DROP privileges.`,
      { cause: e },
    );
  }
  return explainDbError(e, t);
}
