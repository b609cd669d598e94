import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { hlcToIso } from '../clock/hlc.js';
import type { Stamp } from '../capture/rowState.js';
import type { StoredValue } from '../capture/values.js';

/** A value that lost to a concurrent one: kept for a data manager to review (DESIGN §6). */
export interface Conflict {
  table: string;
  identity: string;
  columns: string[];
  winner: Record<string, StoredValue>;
  loser: Record<string, StoredValue>;
  winnerOrigin: string;
  loserOrigin: string;
  /** when the losing change was made (its clock), ISO time */
  at: string;
  /** for a value two rows cannot share (a username): what happened and what a person can do */
  explanation?: string;
}

/** Keeps the values one write set aside for a concurrent one, column by column. */
export async function recordConflict(
  db: Queryable,
  c: {
    table: string;
    ident: string;
    winner: Record<string, StoredValue>;
    loser: Record<string, StoredValue>;
    winnerStamp: Stamp;
    loserStamp: Stamp;
    explanation?: string;
  },
): Promise<void> {
  await execute(
    db,
    `INSERT INTO clinicsync_conflict (tbl, ident, columns, winner, loser, winner_origin, loser_origin, winner_hlc, loser_hlc, at, explanation)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(), ?)`,
    [
      c.table,
      c.ident,
      JSON.stringify(Object.keys(c.winner)),
      JSON.stringify(c.winner),
      JSON.stringify(c.loser),
      c.winnerStamp.origin,
      c.loserStamp.origin,
      c.winnerStamp.hlc.toString(),
      c.loserStamp.hlc.toString(),
      c.explanation ?? null,
    ],
  );
}

export async function listConflicts(db: Queryable, limit = 1000): Promise<Conflict[]> {
  const rows = await queryRows(
    db,
    'SELECT tbl, ident, columns, winner, loser, winner_origin, loser_origin, loser_hlc, explanation FROM clinicsync_conflict ORDER BY id DESC LIMIT ?',
    [limit],
  );
  return rows.map((r) => ({
    table: String(r.tbl),
    identity: String(r.ident),
    columns: JSON.parse(String(r.columns)) as string[],
    winner: JSON.parse(String(r.winner)) as Record<string, StoredValue>,
    loser: JSON.parse(String(r.loser)) as Record<string, StoredValue>,
    winnerOrigin: String(r.winner_origin),
    loserOrigin: String(r.loser_origin),
    at: hlcToIso(BigInt(String(r.loser_hlc))),
    ...(r.explanation != null ? { explanation: String(r.explanation) } : {}),
  }));
}
