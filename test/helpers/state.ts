import { queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';

/** ClinicSync's own bookkeeping, read with plain SQL for the end-to-end tests' assertions. */

/** Parked changes on a node: "table: reason", oldest first. */
export async function parkedOn(node: SyncNode): Promise<string[]> {
  const rows = await queryRows(node.pool, 'SELECT tbl, reason FROM clinicsync_parked ORDER BY pid');
  return rows.map((r) => `${String(r.tbl)}: ${String(r.reason)}`);
}

export async function count(node: SyncNode, sql: string, params: unknown[] = []): Promise<number> {
  const [r] = await queryRows(node.pool, sql, params);
  return Number(Object.values(r!)[0]);
}

/** (origin, seq) pairs that the node's log holds more than once: must always be empty. */
export async function duplicateLogEntries(node: SyncNode): Promise<string[]> {
  const rows = await queryRows(
    node.pool,
    'SELECT origin, seq, COUNT(*) AS n FROM clinicsync_log GROUP BY origin, seq HAVING n > 1',
  );
  return rows.map((r) => `${String(r.origin)}:${String(r.seq)} ×${String(r.n)}`);
}

/** Conflicts recorded on a node, oldest first. */
export async function conflictsOn(
  node: SyncNode,
  table?: string,
): Promise<{ tbl: string; ident: string; columns: string[]; winner: unknown; loser: unknown }[]> {
  const rows = await queryRows(
    node.pool,
    `SELECT tbl, ident, columns, winner, loser FROM clinicsync_conflict ${table ? 'WHERE tbl = ?' : ''} ORDER BY id`,
    table ? [table] : [],
  );
  return rows.map((r) => ({
    tbl: String(r.tbl),
    ident: String(r.ident),
    columns: JSON.parse(String(r.columns)) as string[],
    winner: JSON.parse(String(r.winner)) as unknown,
    loser: JSON.parse(String(r.loser)) as unknown,
  }));
}
