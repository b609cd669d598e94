import type { Queryable } from '../engine/db/pool.js';
import { queryRows } from '../engine/db/pool.js';

/** A parked change as clinicsync_parked and the log hold it (names are added by the caller). */
export interface ParkedRow {
  reason: string;
  table: string;
  identity: string;
  waitingForTable: string | null;
  origin: string;
  since: string;
}

/** Changes waiting here, oldest first; the reason is the sentence apply wrote when parking. */
export async function listParkedRows(db: Queryable, limit: number): Promise<ParkedRow[]> {
  const rows = await queryRows(
    db,
    `SELECT p.tbl, p.reason, p.wait_tbl, p.origin, p.since, l.ident
       FROM clinicsync_parked p
       LEFT JOIN clinicsync_log l ON l.origin = p.origin AND l.seq = p.seq
      ORDER BY p.pid LIMIT ?`,
    [limit],
  );
  return rows.map((r) => ({
    reason: String(r.reason),
    table: String(r.tbl),
    identity: r.ident == null ? '' : String(r.ident),
    waitingForTable: r.wait_tbl == null ? null : String(r.wait_tbl),
    origin: String(r.origin),
    since: new Date(String(r.since).replace(' ', 'T') + 'Z').toISOString(),
  }));
}
