import type { Pool } from '../db/pool.js';
import { execute, inTransaction, queryRows } from '../db/pool.js';
import { khash } from '../capture/rowSql.js';
import { clocksText, parseClocks } from '../capture/rowState.js';

/**
 * Takes the parent's verdict on this node's changes stamped too far ahead (DESIGN §6): the log
 * entry, the clocks it left on its row and its tombstone all take the effective clock, so this node
 * resolves later conflicts exactly as every other node does.
 */
export async function applyClockFixes(
  pool: Pool,
  nodeId: string,
  fixes: Record<string, string>,
): Promise<number> {
  let changed = 0;
  await inTransaction(pool, async (conn) => {
    for (const [seq, hlc] of Object.entries(fixes)) {
      const [entry] = await queryRows(
        conn,
        'SELECT hlc, tbl, lkey FROM clinicsync_log WHERE origin = ? AND seq = ? FOR UPDATE',
        [nodeId, seq],
      );
      if (!entry || String(entry.hlc) === hlc) continue;
      const before = `${String(entry.hlc)}:${nodeId}`;
      const after = `${hlc}:${nodeId}`;
      await execute(conn, 'UPDATE clinicsync_log SET hlc = ? WHERE origin = ? AND seq = ?', [
        hlc,
        nodeId,
        seq,
      ]);
      // later updates made here upon this change name it in their basis
      await execute(
        conn,
        'UPDATE clinicsync_log SET basis = REPLACE(basis, ?, ?) WHERE origin = ? AND seq > ? AND basis LIKE ?',
        [`"${before}"`, `"${after}"`, nodeId, seq, `%"${before}"%`],
      );
      await execute(
        conn,
        'UPDATE clinicsync_tombstone SET hlc = ? WHERE tbl = ? AND origin = ? AND hlc = ?',
        [hlc, entry.tbl, nodeId, entry.hlc],
      );
      if (entry.lkey != null) {
        const [row] = await queryRows(
          conn,
          'SELECT clocks FROM clinicsync_row WHERE tbl = ? AND khash = ? FOR UPDATE',
          [entry.tbl, khash(String(entry.lkey))],
        );
        if (row?.clocks != null) {
          const clocks = parseClocks(String(row.clocks));
          // column clocks, bases and (inside their JSON) reserves may all hold the stamp
          for (const [col, c] of Object.entries(clocks))
            clocks[col] = c === before ? after : c.split(`"${before}"`).join(`"${after}"`);
          await execute(conn, 'UPDATE clinicsync_row SET clocks = ? WHERE tbl = ? AND khash = ?', [
            clocksText(clocks),
            entry.tbl,
            khash(String(entry.lkey)),
          ]);
        }
      }
      changed++;
    }
  });
  return changed;
}

/** "3 days", "5 hours", "12 minutes": how far a clock is off, for a person. */
export function describeOffset(ms: number): string {
  const minutes = Math.round(Math.abs(ms) / 60_000);
  if (minutes >= 2 * 1440) return `${Math.round(minutes / 1440)} days`;
  if (minutes >= 120) return `${Math.round(minutes / 60)} hours`;
  return `${minutes} minutes`;
}
