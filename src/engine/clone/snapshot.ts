import type { TableSelection } from '../capture/tableFilter.js';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGzip, type Gzip, type ZlibParams } from 'node:zlib';
import type { Connection as CallbackConnection, TypeCast } from 'mysql2';
import {
  openPool,
  queryRows,
  type Pool,
  type PoolConnection,
  type RowDataPacket,
} from '../db/pool.js';
import { q } from '../db/ident.js';
import { OWN_PREFIX } from '../db/schema.js';
import { SyncError, isSyncError } from '../errors.js';
import { toStored, type StoredValue } from '../capture/values.js';
import { getMeta } from '../node/meta.js';
import { SCHEMA_VERSION } from '../node/migrations.js';
import type { SyncNode } from '../node/node.js';
import type { RouteHandler, RouteOptions } from '../transport/server.js';
import { ddlDigest } from './ddl.js';
import { keyRangeSql, type KeyColumn } from './keyRange.js';
import { PROGRESS_TABLE, type ResumeClaims } from './progress.js';

/*
 * A consistent snapshot of a node's database (DESIGN §1, §5 last point; issue "Nodes over HTTP",
 * item 3): gzip of newline-delimited JSON records, one JSON object per line.
 *
 *   begin    what the stream is and where it comes from (format, version, parent, SQL mode, an
 *            id of its own)
 *   table    one per base table, ClinicSync's own included: CREATE TABLE text; `rows` says whether
 *            its rows follow (the parent's private tables travel as schema only); `checked` how
 *            many of the chunks a resuming child already holds are checked rather than sent
 *   routine  stored procedures and functions, with the SQL mode they were made under
 *   view     CREATE VIEW text, definer left out (the loading user becomes it)
 *   trigger  the application's triggers and ClinicSync's own, in the order they fire
 *   event    the application's scheduled events
 *   rows     up to `chunkRows` rows (or about `chunkBytes`) of one table in primary-key order;
 *            `chunk` counts from 0 per table and `last` is the primary key of its last row: the
 *            chunk covers the keys after the previous chunk's `last` up to its own. Its fields
 *            come in this order, `last` after `rows` (a child digests the text of `rows`)
 *   same     for a resuming child: a chunk it holds (same number, same key range) is unchanged
 *   count    after a table's rows: how many were sent
 *   end      totals and the sha256 (hex) of every line before it, newline included
 *
 * Values are text exactly as the server renders them, null, or {"b": base64} for bytes.
 *
 * Resuming (issue 6): a child that was cut off sends, with its request, what it holds (per table
 * the digest of the definition it made the table from, and per chunk its end key, digest and row
 * count). For a table whose definition is unchanged, the parent reads each of those key ranges
 * again in the new snapshot and answers `same` where the rows are the same, or the range's rows
 * (with the child's end key as `last`) where they differ; then the rest of the table follows in
 * new chunks. The copy is thus exactly the new snapshot, and only what changed travels again.
 */

export const SNAPSHOT_FORMAT = 'clinicsync-snapshot';
export const SNAPSHOT_VERSION = 1;

/** The parent's own business: their schema is copied, never their rows (no secrets, no peers). */
export const PRIVATE_TABLES: readonly string[] = [
  'clinicsync_peer',
  'clinicsync_peer_vv',
  'clinicsync_pairing',
  'clinicsync_nonce',
  'clinicsync_exchange',
  'clinicsync_lock_holder',
  'clinicsync_capture',
  // complex obs files: what the parent's own disk holds and receives, not the child's
  'clinicsync_file_hash',
  'clinicsync_file_out',
  'clinicsync_file_in',
  'clinicsync_openmrs_refresh',
  'clinicsync_peer_table',
  'clinicsync_peer_software',
  'clinicsync_peer_idgen',
];

/** Made first on the child, so a half-loaded database is marked as such from the start. */
export const META_TABLE = 'clinicsync_meta';

/** The meta key that marks a child's database as an unfinished clone (restore.ts, adopt.ts). */
export const CLONE_INCOMPLETE_KEY = 'clone_incomplete';

export interface BeginRecord {
  kind: 'begin';
  format: typeof SNAPSHOT_FORMAT;
  version: number;
  /** ClinicSync's schema version on the parent (clinicsync_* tables) */
  schemaVersion: number;
  database: string;
  /** the parent's session SQL mode; values are read and loaded without one */
  sqlMode: string;
  server: string;
  node: { nodeId: string; name: string; incarnation: string };
  /** ISO time the snapshot was taken */
  at: string;
  chunkRows: number;
  /** which tables the parent syncs: a child starts with the same choice */
  tables?: TableSelection;
  /** this snapshot's own id: a file read again is known to be the same snapshot */
  snapshotId?: string;
}
export interface TableRecord {
  kind: 'table';
  name: string;
  ddl: string;
  /** false for the parent's private tables: schema only */
  rows: boolean;
  /** the server's rough row count (information_schema), for progress only */
  estimatedRows: number;
  /** how many of the chunks the child said it holds are checked (the rest it must drop) */
  checked?: number;
}
export interface ViewRecord {
  kind: 'view';
  name: string;
  ddl: string;
}
export interface RoutineRecord {
  kind: 'routine';
  name: string;
  type: 'PROCEDURE' | 'FUNCTION';
  ddl: string;
  sqlMode: string;
}
export interface EventRecord {
  kind: 'event';
  name: string;
  ddl: string;
  sqlMode: string;
}
export interface TriggerRecord {
  kind: 'trigger';
  name: string;
  table: string;
  ddl: string;
  sqlMode: string;
  /** one of ClinicSync's capture triggers */
  own: boolean;
}
export interface RowsRecord {
  kind: 'rows';
  table: string;
  chunk: number;
  columns: string[];
  rows: StoredValue[][];
  /** primary-key values of the last row (a checked chunk's own end), or null without a key */
  last: StoredValue[] | null;
}
export interface SameRecord {
  kind: 'same';
  table: string;
  chunk: number;
  rows: number;
}
export interface CountRecord {
  kind: 'count';
  table: string;
  rows: number;
}
export interface EndRecord {
  kind: 'end';
  tables: number;
  rows: number;
  sha256: string;
}
export type SnapshotRecord =
  | BeginRecord
  | TableRecord
  | ViewRecord
  | RoutineRecord
  | TriggerRecord
  | EventRecord
  | RowsRecord
  | SameRecord
  | CountRecord
  | EndRecord;

export interface SnapshotOptions {
  /** rows per `rows` record (default 1,000) */
  chunkRows?: number;
  /** bytes of values per `rows` record before it is cut short (default about 1 MB) */
  chunkBytes?: number;
  /**
   * called after each `rows` record (sent: true) or `same` one (sent: false) has been handed on
   * (tests change the parent there, or count what is sent again)
   */
  afterChunk?: (table: string, chunk: number, sent: boolean) => Promise<void> | void;
  /** what a resuming child already holds (see the top of this file) */
  resume?: ResumeClaims;
  /**
   * picks up every committed change into the log before the snapshot starts; by default the
   * node's own pickup (it must hold the node's lock), else e.g. a call to the engine that does
   */
  pickup?: () => Promise<unknown>;
}

export interface SnapshotSummary {
  tables: number;
  rows: number;
  bytes: number;
  ms: number;
}

const DEFAULT_CHUNK_ROWS = 10_000;
/** About 1 MB of values (some 250 KB gzip'd): what a child loads in one transaction, and what a
 * cut link costs at most to send again. */
const DEFAULT_CHUNK_BYTES = 100_000;
/** A resuming child's request lists every chunk it holds. */
const MAX_REQUEST_BYTES = 32 * 1024 * 1024;
/** Tries at a snapshot with no change left to pick up, before a busy parent's writes are paused. */
const QUIET_TRIES = 5;

/**
 * Writes a gzip'd snapshot of `node`'s database to `out`. The whole stream comes from one
 * transaction WITH CONSISTENT SNAPSHOT on a connection of its own; rows are streamed from the
 * server with backpressure, so memory stays bounded whatever the database's size.
 */
export async function writeSnapshot(
  node: SyncNode,
  out: Writable,
  opts: SnapshotOptions = {},
): Promise<SnapshotSummary> {
  const started = Date.now();
  const totals = { tables: 0, rows: 0, bytes: 0 };
  const lines = Readable.from(encodeLines(snapshotRecords(node, opts), totals), {
    highWaterMark: 2,
  });
  const gzip = createGzip({ level: LIGHT });
  await pipeline(lines, gzip, paced(gzip), countBytes(totals), out);
  return { ...totals, ms: Date.now() - started };
}

/** gzip levels: light while the reader keeps up, thorough while it makes the stream wait. */
const LIGHT = 1;
const THOROUGH = 6;
const PACE_WINDOW_MS = 2_000;

/**
 * Passes gzip's output on and sets its level by how long the reader (the link, a file) keeps
 * the stream waiting: over a window of two seconds, more than 60% waiting means the link is the
 * limit, so bytes are worth CPU (level 6); under 20% means compression would hold the stream
 * back (level 1). On a fast link or a local disk the clone runs at the speed of the databases;
 * on a slow link it sends about an eighth fewer bytes.
 */
function paced(gzip: Gzip) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let level = LIGHT;
    let since = Date.now();
    let waited = 0;
    for await (const chunk of source) {
      const t = Date.now();
      yield chunk;
      const now = Date.now();
      waited += now - t;
      if (now - since < PACE_WINDOW_MS) continue;
      const share = waited / (now - since);
      const want = share > 0.6 ? THOROUGH : share < 0.2 ? LIGHT : level;
      if (want !== level) {
        level = want;
        // A gzip stream is a deflate stream: it takes params (its type does not say so).
        (gzip as unknown as ZlibParams).params(
          want,
          zlibConstants.Z_DEFAULT_STRATEGY,
          () => undefined,
        );
      }
      since = now;
      waited = 0;
    }
  };
}

/** The route a child fetches its snapshot from (a signed POST; see transport/server.ts). */
export const SNAPSHOT_PATH = '/v1/snapshot';

/**
 * POST /v1/snapshot for the transport server: `startSyncServer({ extraRoutes: { [SNAPSHOT_PATH]:
 * snapshotRoute() } })` or `server.route(SNAPSHOT_PATH, ...)`. The answer is the gzip'd stream,
 * signed in a trailer by the server. Whatever stops the snapshot from starting (capture paused,
 * a busy parent, the database) is answered with a status and its sentence; a failure once it
 * streams cuts the stream short, and the child, missing the `end` record, refuses what it got.
 */
export function snapshotRoute(opts: SnapshotOptions = {}): {
  handler: RouteHandler;
  options: RouteOptions;
} {
  return {
    options: { maxBodyBytes: MAX_REQUEST_BYTES },
    handler: async (req) => {
      const { resume, local } = parseSnapshotRequest(req.body);
      const records = snapshotRecords(req.node, { ...opts, ...(resume ? { resume } : {}) });
      // The first record comes once the snapshot has begun: errors before it get a status.
      const first = await records.next();
      async function* all(): AsyncGenerator<SnapshotRecord> {
        if (!first.done) yield first.value;
        yield* records;
      }
      const gzip = createGzip({ level: LIGHT });
      const source = Readable.from(encodeLines(all(), { tables: 0, rows: 0 }), {
        highWaterMark: 2,
      });
      const body = new PassThrough();
      // A child on this server's own network is never held back by the link: light gzip only.
      const flowing = local
        ? pipeline(source, gzip, body)
        : pipeline(source, gzip, paced(gzip), body);
      flowing.catch((e: unknown) => {
        body.destroy(e instanceof Error ? e : new Error(String(e)));
      });
      const stop = () => {
        source.destroy();
        body.destroy();
      };
      if (req.signal.aborted) stop();
      else req.signal.addEventListener('abort', stop, { once: true });
      return {
        contentType: 'application/gzip',
        headers: { 'X-ClinicSync-Snapshot': String(SNAPSHOT_VERSION) },
        body,
      };
    },
  };
}

/**
 * The request's body: empty, or JSON naming a format version this parent can write, whether
 * the child reaches this parent on a local network (`"link": "local"`) and, from a resuming
 * child, what it holds. Claims that are not well formed are dropped (that table is sent
 * whole), never trusted.
 */
function parseSnapshotRequest(body: Buffer): { resume: ResumeClaims | null; local: boolean } {
  if (!body.length) return { resume: null, local: false };
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new SyncError('protocol', 'The snapshot request is not JSON.');
  }
  const version = (v as { version?: unknown } | null)?.version;
  if (version !== undefined && (typeof version !== 'number' || version < 1)) {
    throw new SyncError('protocol', 'The snapshot request names no valid format version.');
  }
  const local = (v as { link?: unknown } | null)?.link === 'local';
  const resume = (v as { resume?: unknown } | null)?.resume;
  if (typeof resume !== 'object' || resume === null) return { resume: null, local };
  const tables = (resume as { tables?: unknown }).tables;
  if (!Array.isArray(tables)) return { resume: null, local };
  const claims: ResumeClaims = { tables: [] };
  for (const t of tables as unknown[]) {
    const { name, ddlDigest: digest, chunks } = (t ?? {}) as Record<string, unknown>;
    if (typeof name !== 'string' || typeof digest !== 'string' || !Array.isArray(chunks)) continue;
    const good = chunks.every(
      (c: unknown) =>
        Array.isArray(c) &&
        Array.isArray(c[0]) &&
        (c[0] as unknown[]).every(isStoredValue) &&
        typeof c[1] === 'string' &&
        /^[0-9a-f]{64}$/.test(c[1]) &&
        Number.isSafeInteger(c[2]),
    );
    if (good) {
      claims.tables.push({
        name,
        ddlDigest: digest,
        chunks: chunks as [StoredValue[], string, number][],
      });
    }
  }
  return { resume: claims, local };
}

function isStoredValue(v: unknown): v is StoredValue {
  return (
    v === null ||
    typeof v === 'string' ||
    (typeof v === 'object' && typeof (v as { b?: unknown }).b === 'string')
  );
}

/**
 * The digest a chunk's rows are known by: of their JSON text. It tells a changed chunk from an
 * unchanged one in a stream already authenticated end to end; sha512-256 is as strong as
 * sha256 and twice as fast on machines without SHA instructions.
 */
export function rowsDigest(rowsJson: string): string {
  return createHash('sha512-256').update(rowsJson).digest('hex');
}

/** A `rows` record's line, its fields in the order a child relies on (see the top). */
function rowsLine(r: RowsRecord): string {
  return `{"kind":"rows","table":${JSON.stringify(r.table)},"chunk":${r.chunk},"columns":${JSON.stringify(r.columns)},"rows":${JSON.stringify(r.rows)},"last":${JSON.stringify(r.last)}}`;
}

/** Turns records into NDJSON lines, adding the checksum and totals to the `end` record. */
async function* encodeLines(
  records: AsyncIterable<SnapshotRecord>,
  totals: { tables: number; rows: number },
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  for await (const r of records) {
    if (r.kind === 'end') {
      const end: EndRecord = { ...r, sha256: hash.digest('hex') };
      totals.tables = end.tables;
      totals.rows = end.rows;
      yield Buffer.from(JSON.stringify(end) + '\n', 'utf8');
      return;
    }
    const line = Buffer.from(`${r.kind === 'rows' ? rowsLine(r) : JSON.stringify(r)}\n`, 'utf8');
    hash.update(line);
    yield line;
  }
}

function countBytes(totals: { bytes: number }) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      totals.bytes += chunk.length;
      yield chunk;
    }
  };
}

interface ColumnInfo {
  name: string;
  dataType: string;
  unsigned: boolean;
  generated: boolean;
}

interface TableInfo {
  name: string;
  estimatedRows: number;
  columns: ColumnInfo[];
  primaryKey: string[];
}

/**
 * The snapshot as records, in stream order. The `end` record's sha256 is filled in by the
 * encoder. Returning early (the consumer stops) ends the transaction and frees the connection.
 */
export async function* snapshotRecords(
  node: SyncNode,
  opts: SnapshotOptions = {},
): AsyncGenerator<SnapshotRecord> {
  const chunkRows = Math.max(1, opts.chunkRows ?? DEFAULT_CHUNK_ROWS);
  const chunkBytes = Math.max(1, opts.chunkBytes ?? DEFAULT_CHUNK_BYTES);
  if (await node.capture.isPaused()) {
    throw new SyncError(
      'state',
      'Capture is paused on this node (an upgrade is under way), so it cannot be cloned now; clone it after "clinic-sync capture resume".',
    );
  }
  const database = node.db.database;
  const name = (await getMeta(node.pool, 'name')) ?? node.settings.name;
  // A connection of its own: the snapshot's session settings never leak into the node's pool.
  const pool = openPool(node.db, { connectionLimit: 2 });
  let conn: PoolConnection | null = null;
  let clean = false;
  try {
    conn = await pool.getConnection();
    const [mode] = await queryRows(
      conn,
      'SELECT @@SESSION.sql_mode AS m, VERSION() AS v, UTC_TIMESTAMP(3) AS at',
    );
    // No SQL mode while reading: ANSI_QUOTES would change SHOW CREATE, PAD_CHAR_TO_FULL_LENGTH the
    // values. A slow child pauses the row stream, so the server must not time the reads out.
    await conn.query(
      "SET SESSION sql_mode = '', net_write_timeout = 86400, net_read_timeout = 86400, wait_timeout = 86400",
    );
    await beginConsistentSnapshot(conn, pool, database, opts.pickup ?? (() => node.pickup()));

    const tables = await readTables(conn, database);
    const claims = new Map((opts.resume?.tables ?? []).map((t) => [t.name, t]));
    /** per table, the chunks of the resuming child that are checked instead of sent */
    const checked = new Map<string, [StoredValue[], string, number][]>();
    yield {
      kind: 'begin',
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      schemaVersion: SCHEMA_VERSION,
      database,
      sqlMode: String(mode?.m ?? ''),
      server: String(mode?.v ?? ''),
      node: { nodeId: node.nodeId, name, incarnation: node.incarnation },
      at: new Date(String(mode?.at ?? '').replace(' ', 'T') + 'Z').toISOString(),
      chunkRows,
      tables: node.settings.tables,
      snapshotId: randomBytes(8).toString('hex'),
    };

    // Schema first: every table (clinicsync_meta leads), routines, views, triggers, events.
    for (const t of tables) {
      const [row] = await queryRows(conn, `SHOW CREATE TABLE ${q(t.name)}`);
      const ddl = String(row?.['Create Table'] ?? '');
      if (!ddl) throw new SyncError('database', `The table ${t.name} could not be read.`);
      const carried = !PRIVATE_TABLES.includes(t.name);
      const claim = claims.get(t.name);
      // Only a table with a primary key can be checked by key range, and only one whose
      // definition the child's copy was made from.
      const keyed = (selectOf(t)?.keyAt.length ?? 0) > 0 && t.name !== META_TABLE;
      const kept =
        carried && keyed && claim && claim.ddlDigest === ddlDigest(ddl)
          ? claim.chunks.filter((c) => c[0].length === t.primaryKey.length)
          : [];
      if (kept.length) checked.set(t.name, kept);
      yield {
        kind: 'table',
        name: t.name,
        ddl,
        rows: carried,
        estimatedRows: carried ? t.estimatedRows : 0,
        ...(claim ? { checked: kept.length } : {}),
      };
    }
    yield* routineRecords(conn, database);
    yield* viewRecords(conn, database);
    yield* triggerRecords(conn, database);
    yield* eventRecords(conn, database);

    // Then the rows, table by table.
    let total = 0;
    for (const t of tables) {
      let n = 0;
      if (!PRIVATE_TABLES.includes(t.name)) {
        const kept = checked.get(t.name) ?? [];
        let after: StoredValue[] | null = null;
        for (let i = 0; i < kept.length; i++) {
          const [last, digest, count] = kept[i]!;
          const rec = await rangeRecord(conn, t, i, after, last);
          n += rec.rows.length;
          const same = rec.rows.length === count && rowsDigest(JSON.stringify(rec.rows)) === digest;
          yield same ? { kind: 'same', table: t.name, chunk: i, rows: count } : rec;
          await opts.afterChunk?.(t.name, i, !same);
          after = last;
        }
        for await (const rec of tableRows(conn, t, chunkRows, chunkBytes, after, kept.length)) {
          n += rec.rows.length;
          yield rec;
          await opts.afterChunk?.(t.name, rec.chunk, true);
        }
      }
      total += n;
      yield { kind: 'count', table: t.name, rows: n };
    }
    await conn.query('COMMIT');
    clean = true;
    yield { kind: 'end', tables: tables.length, rows: total, sha256: '' };
  } catch (e) {
    if (isSyncError(e)) throw e;
    throw explainSnapshotError(e);
  } finally {
    if (conn) {
      // Stopped mid-stream, the connection may still be receiving rows: drop it, not reuse it.
      if (clean) conn.release();
      else conn.destroy();
    }
    await pool.end().catch(() => undefined);
  }
}

/**
 * Starts the transaction the whole snapshot is read in, at a moment when every change it can see
 * has been picked up into the log: the copied data, row state and log then agree exactly, and
 * what the parent picks up later reaches the child by its first exchange.
 */
async function beginConsistentSnapshot(
  conn: PoolConnection,
  pool: Pool,
  database: string,
  pickup: () => Promise<unknown>,
): Promise<void> {
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  const attempt = async (): Promise<boolean> => {
    await pickup();
    await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT');
    const [left] = await queryRows(conn, 'SELECT COUNT(*) AS n FROM clinicsync_capture');
    if (Number(left?.n ?? 0) === 0) return true;
    await conn.query('ROLLBACK');
    return false;
  };
  for (let n = 1; n <= QUIET_TRIES; n++) {
    if (await attempt()) return;
    await new Promise((r) => setTimeout(r, 20 * n));
  }
  // A clinic at work writes between every pickup and the snapshot's start: its writes wait a
  // moment (the application's tables locked for reading, on a connection of their own) while
  // the last changes are picked up and the snapshot starts.
  const lock = await pool.getConnection();
  try {
    const tables = await queryRows(
      lock,
      "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME NOT LIKE 'clinicsync\\_%'",
      [database],
    );
    await lock.query('SET SESSION lock_wait_timeout = 30');
    try {
      if (tables.length) {
        await lock.query(`LOCK TABLES ${tables.map((r) => `${q(String(r.t))} READ`).join(', ')}`);
      }
    } catch (e) {
      throw new SyncError(
        'state',
        `The parent is changing too fast to take a consistent snapshot, and its writes could not be paused for a moment (${(e as Error).message.replace(/\.$/, '')}); try again in a quieter moment, or grant the LOCK TABLES privilege.`,
        { cause: e },
      );
    }
    if (!(await attempt())) {
      throw new SyncError(
        'state',
        'The parent is changing too fast to take a consistent snapshot; try the clone again in a quieter moment.',
      );
    }
  } finally {
    await lock.query('UNLOCK TABLES').catch(() => undefined);
    lock.destroy();
  }
}

/** Base tables in load order: clinicsync_meta first, then the largest first. */
async function readTables(conn: PoolConnection, database: string): Promise<TableInfo[]> {
  // A resumable clone's own bookkeeping (left behind where adoption was cut short) never travels.
  const tableRows = await queryRows(
    conn,
    `SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES
      WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW' AND TABLE_NAME <> ? ORDER BY TABLE_NAME`,
    [database, PROGRESS_TABLE],
  );
  // MariaDB's sequences and system-versioned tables: refused, rather than left out unsaid.
  const odd = tableRows.find((r) => r.TABLE_TYPE !== 'BASE TABLE');
  if (odd) {
    throw new SyncError(
      'state',
      `The table ${String(odd.TABLE_NAME)} is a ${String(odd.TABLE_TYPE).toLowerCase()}, which a clone cannot copy yet; it would be missing on the new clinic.`,
    );
  }
  const columnRows = await queryRows(
    conn,
    `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [database],
  );
  const keyRows = await queryRows(
    conn,
    `SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS
      WHERE TABLE_SCHEMA = ? AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX`,
    [database],
  );
  const tables = new Map<string, TableInfo>();
  for (const r of tableRows) {
    const name = String(r.TABLE_NAME);
    tables.set(name, {
      name,
      estimatedRows: Number(r.TABLE_ROWS ?? 0),
      columns: [],
      primaryKey: [],
    });
  }
  for (const c of columnRows) {
    const extra = String(c.EXTRA ?? '').toLowerCase();
    tables.get(String(c.TABLE_NAME))?.columns.push({
      name: String(c.COLUMN_NAME),
      dataType: String(c.DATA_TYPE).toLowerCase(),
      unsigned: /\bunsigned\b/i.test(String(c.COLUMN_TYPE)),
      generated: /\b(virtual|stored|persistent)\b/.test(extra),
    });
  }
  for (const k of keyRows) tables.get(String(k.TABLE_NAME))?.primaryKey.push(String(k.COLUMN_NAME));
  if (!tables.has(META_TABLE)) {
    throw new SyncError(
      'state',
      `The database "${database}" is not a ClinicSync node (no ${META_TABLE}); it cannot be cloned.`,
    );
  }
  // The largest first: a child builds a table's indexes while the next tables load, so the
  // small ones are what is left at the end.
  const list = [...tables.values()]
    .filter((t) => t.name !== META_TABLE)
    .sort((a, b) => b.estimatedRows - a.estimatedRows || (a.name < b.name ? -1 : 1));
  return [tables.get(META_TABLE)!, ...list];
}

const QUOTED = "`(?:[^`]|``)*`|'(?:[^']|'')*'";
const DEFINER = new RegExp(
  `^(\\s*CREATE(?:\\s+OR\\s+REPLACE)?(?:\\s+ALGORITHM\\s*=\\s*\\w+)?)\\s+DEFINER\\s*=\\s*(?:${QUOTED}|[^\\s@]+)(?:\\s*@\\s*(?:${QUOTED}|[^\\s]+))?(?=\\s)`,
  'i',
);

/**
 * Takes `DEFINER=user@host` out of the head of SHOW CREATE text, so the user who loads it becomes
 * the definer: the parent's accounts need not exist on the child.
 */
export function stripDefiner(ddl: string): string {
  return ddl.replace(DEFINER, '$1');
}

async function* routineRecords(
  conn: PoolConnection,
  database: string,
): AsyncGenerator<RoutineRecord> {
  const rows = await queryRows(
    conn,
    `SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES
      WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE IN ('PROCEDURE', 'FUNCTION') ORDER BY ROUTINE_TYPE, ROUTINE_NAME`,
    [database],
  );
  for (const r of rows) {
    const name = String(r.ROUTINE_NAME);
    const type = r.ROUTINE_TYPE === 'FUNCTION' ? 'FUNCTION' : 'PROCEDURE';
    const [show] = await queryRows(conn, `SHOW CREATE ${type} ${q(name)}`);
    const text = show?.[type === 'FUNCTION' ? 'Create Function' : 'Create Procedure'];
    if (text == null) {
      throw new SyncError(
        'privileges',
        `The ${type.toLowerCase()} ${name} cannot be read by this database user; grant it SELECT on mysql.proc (or SHOW_ROUTINE) so the clone can copy it.`,
      );
    }
    yield {
      kind: 'routine',
      name,
      type,
      ddl: stripDefiner(String(text)),
      sqlMode: String(show?.sql_mode ?? ''),
    };
  }
}

async function* viewRecords(conn: PoolConnection, database: string): AsyncGenerator<ViewRecord> {
  const rows = await queryRows(
    conn,
    `SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`,
    [database],
  );
  for (const r of rows) {
    const name = String(r.TABLE_NAME);
    // Names in the current database come back unqualified, so the view fits any database name.
    const [show] = await queryRows(conn, `SHOW CREATE VIEW ${q(name)}`);
    const text = show?.['Create View'];
    if (text == null) throw new SyncError('database', `The view ${name} could not be read.`);
    yield { kind: 'view', name, ddl: stripDefiner(String(text)) };
  }
}

async function* triggerRecords(
  conn: PoolConnection,
  database: string,
): AsyncGenerator<TriggerRecord> {
  // ACTION_ORDER: creating them in this order on the child makes them fire in the same order.
  const rows = await queryRows(
    conn,
    `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS
      WHERE TRIGGER_SCHEMA = ?
      ORDER BY EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER, TRIGGER_NAME`,
    [database],
  );
  for (const r of rows) {
    const name = String(r.TRIGGER_NAME);
    const [show] = await queryRows(conn, `SHOW CREATE TRIGGER ${q(name)}`);
    const text = show?.['SQL Original Statement'];
    if (text == null) throw new SyncError('database', `The trigger ${name} could not be read.`);
    yield {
      kind: 'trigger',
      name,
      table: String(r.EVENT_OBJECT_TABLE),
      ddl: stripDefiner(String(text)),
      sqlMode: String(show?.sql_mode ?? ''),
      own: name.toLowerCase().startsWith(OWN_PREFIX),
    };
  }
}

async function* eventRecords(conn: PoolConnection, database: string): AsyncGenerator<EventRecord> {
  const rows = await queryRows(
    conn,
    'SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME',
    [database],
  );
  for (const r of rows) {
    const name = String(r.EVENT_NAME);
    const [show] = await queryRows(conn, `SHOW CREATE EVENT ${q(name)}`);
    const text = show?.['Create Event'];
    if (text == null) throw new SyncError('database', `The event ${name} could not be read.`);
    yield {
      kind: 'event',
      name,
      ddl: stripDefiner(String(text)),
      sqlMode: String(show?.sql_mode ?? ''),
    };
  }
}

/** Numbers and dates as the server's own text; bytes (geometry too) as bytes; JSON as text. */
const typeCast: TypeCast = (field, next) => {
  switch (field.type) {
    case 'GEOMETRY':
      return field.buffer();
    case 'JSON':
      return field.string('utf8');
    case 'TINY':
    case 'SHORT':
    case 'LONG':
    case 'INT24':
    case 'LONGLONG':
    case 'YEAR':
    case 'FLOAT':
    case 'DOUBLE':
    case 'DECIMAL':
    case 'NEWDECIMAL':
      return field.string('ascii');
    default:
      return next();
  }
};

/** The SELECT list of a table's stored columns, and where its key's columns are in it. */
function selectOf(t: TableInfo): { select: string; names: string[]; keyAt: number[] } | null {
  const cols = t.columns.filter((c) => !c.generated);
  if (!cols.length) return null;
  // MariaDB prints FLOAT with 6 digits; as a double it comes back exactly.
  const select = cols
    .map((c) => (c.dataType === 'float' ? `(${q(c.name)} + 0E0) AS ${q(c.name)}` : q(c.name)))
    .join(', ');
  const names = cols.map((c) => c.name);
  const keyAt = t.primaryKey.map((k) => names.indexOf(k));
  return { select, names, keyAt: keyAt.every((i) => i >= 0) ? keyAt : [] };
}

function keyColumns(t: TableInfo): KeyColumn[] {
  return t.primaryKey.map((k) => {
    const c = t.columns.find((col) => col.name === k)!;
    return { name: c.name, dataType: c.dataType, unsigned: c.unsigned };
  });
}

/**
 * One table's rows as `rows` records, read by one streaming SELECT in primary-key order (from
 * after the key `after`, numbering chunks from `firstChunk`). The driver pauses the connection
 * while the records are not taken, so at most one chunk and the driver's small buffer are held.
 */
async function* tableRows(
  conn: PoolConnection,
  t: TableInfo,
  chunkRows: number,
  chunkBytes: number,
  after: StoredValue[] | null = null,
  firstChunk = 0,
): AsyncGenerator<RowsRecord> {
  const shape = selectOf(t);
  if (!shape) return;
  const { select, names, keyAt } = shape;
  const order = t.primaryKey.length ? ` ORDER BY ${t.primaryKey.map(q).join(', ')}` : '';
  const range = after ? keyRangeSql(keyColumns(t), after, null) : null;
  const raw = (conn as unknown as { connection: CallbackConnection }).connection;
  const stream = raw
    .query({
      sql: `SELECT ${select} FROM ${q(t.name)}${range ? ` WHERE ${range.sql}` : ''}${order}`,
      values: range?.params ?? [],
      rowsAsArray: true,
      typeCast,
    })
    .stream({ highWaterMark: 256 });
  let chunk = firstChunk;
  let rows: StoredValue[][] = [];
  let bytes = 0;
  const record = (): RowsRecord => {
    const lastRow = rows[rows.length - 1]!;
    return {
      kind: 'rows',
      table: t.name,
      chunk: chunk++,
      columns: names,
      rows,
      last: keyAt.length ? keyAt.map((i) => lastRow[i]!) : null,
    };
  };
  try {
    for await (const batch of buffered(stream)) {
      for (const row of batch as unknown[][]) {
        const values = row.map(storedValue);
        for (const v of values)
          bytes += v === null ? 4 : typeof v === 'string' ? v.length : v.b.length;
        rows.push(values);
        if (rows.length >= chunkRows || bytes >= chunkBytes) {
          const rec = record();
          rows = [];
          bytes = 0;
          yield rec;
        }
      }
    }
  } finally {
    if (!stream.destroyed) stream.destroy();
  }
  if (rows.length) yield record();
}

/**
 * The rows of one chunk a resuming child holds, read again in this snapshot: the keys after
 * `after` up to `last`, as one `rows` record whose `last` is the child's end of the chunk.
 */
async function rangeRecord(
  conn: PoolConnection,
  t: TableInfo,
  chunk: number,
  after: StoredValue[] | null,
  last: StoredValue[],
): Promise<RowsRecord> {
  const shape = selectOf(t)!;
  const range = keyRangeSql(keyColumns(t), after, last);
  const [rows] = await conn.query<RowDataPacket[]>({
    sql: `SELECT ${shape.select} FROM ${q(t.name)} WHERE ${range.sql} ORDER BY ${t.primaryKey.map(q).join(', ')}`,
    values: range.params,
    rowsAsArray: true,
    typeCast,
  });
  return {
    kind: 'rows',
    table: t.name,
    chunk,
    columns: shape.names,
    rows: (rows as unknown as unknown[][]).map((r) => r.map(storedValue)),
    last,
  };
}

/**
 * What an object stream holds, a buffer at a time: a million rows cost a few thousand awaits,
 * not a million (for await over the stream itself takes one per row).
 */
async function* buffered(stream: Readable): AsyncGenerator<unknown[]> {
  let ended = false;
  let failed: Error | null = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  stream.on('readable', notify);
  stream.on('end', () => {
    ended = true;
    notify();
  });
  stream.on('error', (e: Error) => {
    failed = e;
    notify();
  });
  for (;;) {
    if (failed) throw failed;
    const batch: unknown[] = [];
    let item: unknown;
    while ((item = stream.read()) !== null) batch.push(item);
    if (batch.length) {
      yield batch;
      continue;
    }
    if (ended) return;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}

function storedValue(v: unknown): StoredValue {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return toStored(v);
  if (typeof v === 'string') return v;
  return String(v);
}

function explainSnapshotError(e: unknown): SyncError {
  const err = e as { code?: string; message?: string };
  if (err.code === 'ER_TABLE_DEF_CHANGED') {
    return new SyncError(
      'state',
      "The parent's schema changed while the snapshot was taken; try the clone again.",
      { cause: e },
    );
  }
  return new SyncError(
    'database',
    `The snapshot of this database failed: ${err.message ?? String(e)}.`,
    { cause: e },
  );
}
