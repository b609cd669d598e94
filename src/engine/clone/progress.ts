import type { StoredValue } from '../capture/values.js';
import { queryRows, type Queryable } from '../db/pool.js';

/*
 * What an unfinished clone has loaded, kept in the child's database in the same transactions as
 * the rows (so a killed process can never count a chunk it did not commit, nor lose one it did):
 * one row per committed chunk of a table with a primary key, and per table the digest of the
 * CREATE TABLE it was made from (chunk -1). A later attempt tells the parent what it holds
 * (ResumeClaims) and loads only what is missing or changed. Adoption drops the table; it never
 * travels in a snapshot.
 */

export const PROGRESS_TABLE = 'clinicsync_clone_chunk';

/** The chunk number under which a table's definition digest is kept. */
const DEFINITION = -1;
/** The "table" under which the snapshot being loaded is named. */
const SOURCE = '';

export const PROGRESS_DDL = `CREATE TABLE IF NOT EXISTS ${PROGRESS_TABLE} (
  tbl VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  chunk INT NOT NULL,
  last_key MEDIUMTEXT NULL,
  digest VARCHAR(64) CHARACTER SET ascii NOT NULL,
  row_count INT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (tbl, chunk)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`;

export interface ChunkDone {
  chunk: number;
  /** primary-key values of the chunk's end: the chunk covers (previous end, this end] */
  last: StoredValue[];
  /** rowsDigest() of the chunk's rows as the snapshot carried them */
  digest: string;
  rows: number;
}

export interface TableDone {
  /** ddlDigest() of the CREATE TABLE the table was made from */
  ddlDigest: string | null;
  chunks: ChunkDone[];
}

export interface LoadedSoFar {
  /** the snapshot the rows came from: its parent and id */
  source: { parentNodeId: string; snapshotId: string } | null;
  tables: Map<string, TableDone>;
}

export async function progressTableExists(db: Queryable): Promise<boolean> {
  const rows = await queryRows(
    db,
    'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
    [PROGRESS_TABLE],
  );
  return rows.length > 0;
}

/** Everything recorded, chunks in order; empty where nothing was. */
export async function readProgress(db: Queryable): Promise<LoadedSoFar> {
  const done: LoadedSoFar = { source: null, tables: new Map() };
  if (!(await progressTableExists(db))) return done;
  const rows = await queryRows(
    db,
    `SELECT tbl, chunk, last_key, digest, row_count FROM ${PROGRESS_TABLE} ORDER BY tbl, chunk`,
  );
  for (const r of rows) {
    const table = String(r.tbl);
    const chunk = Number(r.chunk);
    if (table === SOURCE) {
      const s = parseJson(r.last_key) as { parentNodeId?: unknown; snapshotId?: unknown } | null;
      if (typeof s?.parentNodeId === 'string' && typeof s.snapshotId === 'string') {
        done.source = { parentNodeId: s.parentNodeId, snapshotId: s.snapshotId };
      }
      continue;
    }
    let t = done.tables.get(table);
    if (!t) done.tables.set(table, (t = { ddlDigest: null, chunks: [] }));
    if (chunk === DEFINITION) {
      t.ddlDigest = String(r.digest);
      continue;
    }
    const last = parseJson(r.last_key);
    // Chunks are committed in order; a gap would mean the table was tampered with: stop there.
    if (chunk !== t.chunks.length || !Array.isArray(last)) continue;
    t.chunks.push({
      chunk,
      last: last as StoredValue[],
      digest: String(r.digest),
      rows: Number(r.row_count),
    });
  }
  return done;
}

export async function recordSource(
  db: Queryable,
  source: { parentNodeId: string; snapshotId: string },
): Promise<void> {
  await db.query(
    `REPLACE INTO ${PROGRESS_TABLE} (tbl, chunk, last_key, digest, row_count) VALUES (?, ?, ?, '', 0)`,
    [SOURCE, DEFINITION, JSON.stringify(source)],
  );
}

export async function recordDefinition(
  db: Queryable,
  table: string,
  ddlDigest: string,
): Promise<void> {
  await db.query(
    `REPLACE INTO ${PROGRESS_TABLE} (tbl, chunk, last_key, digest, row_count) VALUES (?, ?, NULL, ?, 0)`,
    [table, DEFINITION, ddlDigest],
  );
}

export async function recordChunk(db: Queryable, table: string, c: ChunkDone): Promise<void> {
  await db.query(
    `REPLACE INTO ${PROGRESS_TABLE} (tbl, chunk, last_key, digest, row_count) VALUES (?, ?, ?, ?, ?)`,
    [table, c.chunk, JSON.stringify(c.last), c.digest, c.rows],
  );
}

/** Forgets a table's chunks from `from` on (all of them, and its definition, with from = -1). */
export async function forgetChunks(db: Queryable, table: string, from: number): Promise<void> {
  await db.query(`DELETE FROM ${PROGRESS_TABLE} WHERE tbl = ? AND chunk >= ?`, [table, from]);
}

/** Forgets every table's chunks but keeps nothing of the source either. */
export async function forgetAll(db: Queryable): Promise<void> {
  await db.query(`DELETE FROM ${PROGRESS_TABLE}`);
}

function parseJson(v: unknown): unknown {
  if (v == null) return null;
  try {
    return JSON.parse(String(v));
  } catch {
    return null;
  }
}

/**
 * What a child asks its parent to check instead of sending again (the snapshot request's
 * `resume`): per table, the digest of its definition and its chunks' ends, digests and sizes.
 */
export interface ResumeClaims {
  tables: { name: string; ddlDigest: string; chunks: [StoredValue[], string, number][] }[];
}

export function claimsOf(done: LoadedSoFar): ResumeClaims {
  const tables: ResumeClaims['tables'] = [];
  for (const [name, t] of done.tables) {
    if (!t.ddlDigest || !t.chunks.length) continue;
    tables.push({
      name,
      ddlDigest: t.ddlDigest,
      chunks: t.chunks.map((c) => [c.last, c.digest, c.rows]),
    });
  }
  return { tables };
}
