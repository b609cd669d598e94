import { tablesSchema } from '../config/settings.js';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { escape, format } from 'mysql2';
import type { DbTarget } from '../db/url.js';
import { explainDbError, openPool, queryRows, type PoolConnection } from '../db/pool.js';
import { q } from '../db/ident.js';
import { isOwnName } from '../db/schema.js';
import { SyncError, isSyncError } from '../errors.js';
import { fromStored, type StoredValue, type Value } from '../capture/values.js';
import { SCHEMA_VERSION } from '../node/migrations.js';
import { databaseContents, isEmpty, notEmptyError } from './contents.js';
import { asIs, autoIncrementOf, ddlDigest, splitCreateTable, type SplitTable } from './ddl.js';
import { keyRangeSql, sameKey, type KeyColumn } from './keyRange.js';
import {
  PROGRESS_DDL,
  PROGRESS_TABLE,
  forgetChunks,
  readProgress,
  recordChunk,
  recordDefinition,
  recordSource,
  type ChunkDone,
  type LoadedSoFar,
} from './progress.js';
import {
  CLONE_INCOMPLETE_KEY,
  META_TABLE,
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  stripDefiner,
  type BeginRecord,
  type EventRecord,
  type RoutineRecord,
  type TriggerRecord,
  type ViewRecord,
} from './snapshot.js';

/**
 * The child's side of a clone: loads a snapshot stream (snapshot.ts) into an empty database, or
 * continues loading one into the unfinished clone an earlier attempt left (issue 6).
 *
 * Tables are made with their primary key only; each chunk of rows goes in by multi-row INSERTs
 * with foreign-key and unique checks off, in one transaction with the record of the chunk
 * (progress.ts), so a killed process resumes from its last committed chunk. Once a table's rows
 * are in, its other indexes are built in one sorted pass; once all are in, the foreign keys are
 * added, the routines, views, triggers and events made (after the data, so loading fires no
 * trigger), the counts and the stream's checksum verified, and every foreign key checked.
 * From its first table on, the database carries the meta row `clone_incomplete`: until
 * SyncNode.adoptClone makes it a child, no ClinicSync engine opens it.
 */

/** The meta key that marks a database as an unfinished clone; adoption removes it. */
export const CLONE_INCOMPLETE = CLONE_INCOMPLETE_KEY;

export type RestorePhase = 'schema' | 'rows' | 'objects' | 'verify' | 'done';

export interface RestoreProgress {
  phase: RestorePhase;
  /** tables whose rows are all loaded, of `totalTables` */
  tables: number;
  totalTables: number;
  /** rows done: loaded now or kept from an earlier attempt */
  rows: number;
  /** of those, rows an earlier attempt had loaded (checked, not sent or loaded again) */
  keptRows: number;
  /** the parent's estimate of all rows (information_schema), for a rough share done */
  estimatedRows: number;
  /** bytes of the (compressed) stream received */
  bytes: number;
  table: string | null;
}

export interface RestoreOptions {
  db: DbTarget;
  /** when given, the snapshot must come from this node */
  parentNodeId?: string;
  /** the database holds an unfinished clone that this load continues */
  resume?: boolean;
  /**
   * rows (the parent's estimate) from which a table's indexes and foreign keys are added after
   * its rows rather than made with it (default 20,000; 0: every table's)
   */
  deferIndexesFromRows?: number;
  onProgress?: (p: RestoreProgress) => void;
}

/** A foreign key some rows of the copy break (they do so on the parent too: see verifyForeignKeys). */
export interface BrokenReference {
  table: string;
  constraint: string;
  referenced: string;
  rows: number;
}

export interface RestoreResult {
  begin: BeginRecord;
  /** every base table, ClinicSync's own included */
  tables: number;
  rows: number;
  /** the application's tables and rows (what a person counts) */
  appTables: number;
  appRows: number;
  views: number;
  routines: number;
  triggers: number;
  events: number;
  bytes: number;
  /** chunks loaded by this attempt, and those an earlier attempt had loaded and were kept */
  chunksLoaded: number;
  chunksKept: number;
  rowsKept: number;
  brokenReferences: BrokenReference[];
  ms: number;
}

/**
 * Rows per INSERT, and its size in bytes at most (further capped by max_allowed_packet): under
 * V8's large-object size, so the statements' text is young garbage, cheap to collect.
 */
const BATCH_ROWS = 5_000;
const BATCH_BYTES = 120_000;
/**
 * Chunks are committed in groups of about this many bytes, or as often as this many ms on a
 * slow link: few commits on a fast one, and little work lost to a cut on any.
 */
const COMMIT_BYTES = 16_000_000;
const COMMIT_MS = 2_000;
/** Rows (the parent's estimate) from which a table's indexes are built after its rows. */
const DEFER_INDEXES_FROM_ROWS = 20_000;
const NEWLINE = Buffer.from('\n');
/** No SQL mode while loading (zero dates and the parent's values go in as they are), except that
 * an explicit 0 in an auto-increment column stays 0. */
const LOADING_MODE = 'NO_AUTO_VALUE_ON_ZERO';
const CUT_SHORT = 'it stops before its end (the connection was cut or the parent failed)';

interface TableState {
  name: string;
  carried: boolean;
  estimatedRows: number;
  /** rows received: loaded now, or kept from an earlier attempt */
  received: number;
  counted: boolean;
  /** columns that may be written, from the child's own information_schema */
  writable: Writable | null;
  /** its primary key's columns here, or null where it has none (no chunk can be recorded) */
  key: KeyColumn[] | null;
  split: SplitTable;
  /** the parent's AUTO_INCREMENT counter, where it has one */
  autoIncrement: string | null;
  /** made by an earlier attempt and kept */
  kept: boolean;
  /** chunks committed so far, in order (kept and loaded) */
  chunks: ChunkDone[];
  /** the next chunk number expected */
  nextChunk: number;
  /** rows already here were cleared for this attempt (tables whose chunks are not recorded) */
  cleared: boolean;
}

/** What an INSERT may name in a table. */
interface Writable {
  names: Set<string>;
  /** its AUTO_INCREMENT column, if any */
  autoIncrement: string | null;
}

/**
 * The connection's open transaction of chunks. One connection writes: MariaDB loads rows into
 * an empty table fastest in one transaction that locks the table, so a second writer on the
 * same table would only wait.
 */
interface Writer {
  inTransaction: boolean;
  /** bytes of rows written since the last commit */
  uncommitted: number;
  /** the chunk being written, if any, while the next one is read */
  busy: Promise<void> | null;
  /** when the transaction began */
  since: number;
}

/** One chunk ready to be written: its SQL made, its record to keep. */
interface ChunkWrite {
  table: TableState;
  /** DELETEs to run before the rows go in */
  deleting: string[];
  columns: string[];
  rows: Value[][];
  /** the rows as LOAD DATA reads them, where the server takes it */
  tsv: LoadData | null;
  done: ChunkDone | null;
}

/** One chunk as tab-separated text, with the column list that reads it. */
interface LoadData {
  text: Buffer;
  /** `(col, @v1, …) SET col1 = UNHEX(@v1)`: byte columns travel as hex */
  columns: string;
}

/**
 * Loads the gzip'd snapshot in `source` into the database `opts.db`: an empty one, or (resume)
 * one holding an unfinished clone. On failure the database is left marked unusable
 * (clone_incomplete) and the error says so.
 */
export async function restoreSnapshot(
  source: AsyncIterable<Uint8Array>,
  opts: RestoreOptions,
): Promise<RestoreResult> {
  const started = Date.now();
  const pool = openPool(opts.db, { connectionLimit: 2 });
  let conn: PoolConnection | null = null;
  let side: PoolConnection | null = null;
  let marked = false;
  try {
    try {
      conn = await pool.getConnection();
      side = await pool.getConnection();
    } catch (e) {
      throw explainDbError(e, opts.db);
    }
    const contents = await databaseContents(conn, opts.db.database);
    const resume = opts.resume === true && contents.unfinishedClone;
    if (!resume && !isEmpty(contents)) throw notEmptyError(opts.db.database, contents);
    marked = resume;
    const loader = new Loader(conn, side, opts, resume);
    try {
      const result = await loader.run(source, () => {
        marked = true;
      });
      return { ...result, ms: Date.now() - started };
    } catch (e) {
      const reason = describe(e);
      await loader.stop();
      if (marked) {
        await markFailed(conn, reason).catch(() => undefined);
        throw new SyncError(
          isSyncError(e) ? e.kind : 'database',
          `${reason}; the database "${opts.db.database}" is left marked as an unfinished clone and cannot be used, so run the same clone command again to finish it.`,
          { cause: e },
        );
      }
      throw isSyncError(e) ? e : explainDbError(e, opts.db);
    }
  } finally {
    // A transaction left open (a failure) is rolled back as the connection goes.
    conn?.destroy();
    side?.destroy();
    await pool.end().catch(() => undefined);
  }
}

async function markFailed(conn: PoolConnection, reason: string): Promise<void> {
  await conn.query('ROLLBACK').catch(() => undefined);
  await conn.query(
    `INSERT INTO ${q(META_TABLE)} (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)`,
    [CLONE_INCOMPLETE, `failed: ${reason}`.slice(0, 2000)],
  );
}

class Loader {
  private begin: BeginRecord | null = null;
  private readonly tables = new Map<string, TableState>();
  private readonly routines: RoutineRecord[] = [];
  private readonly views: ViewRecord[] = [];
  private readonly triggers: TriggerRecord[] = [];
  private readonly events: EventRecord[] = [];
  private rowsStarted = false;
  private rows = 0;
  private rowsKept = 0;
  private appRows = 0;
  private chunksLoaded = 0;
  private chunksKept = 0;
  private tablesDone = 0;
  private bytesIn = 0;
  private estimatedRows = 0;
  private maxPacket = 16 * 1_048_576;
  private batchBytes = BATCH_BYTES;
  private lastProgress = 0;
  /** the session's SQL mode now, and what each object's mode comes to on this server */
  private mode = '';
  private readonly modes = new Map<string, string>();
  /** what an earlier attempt loaded (resume), and the tables that exist here */
  private done: LoadedSoFar = { source: null, tables: new Map() };
  private existing = new Set<string>();
  /** the same snapshot as the earlier attempt's (a file read again) */
  private sameSnapshot = false;
  /** whether chunks go in by LOAD DATA LOCAL (until the server refuses it) */
  private loadData = true;
  /** the connections chunks are written on, in turn */
  private readonly writer: Writer = { inTransaction: false, uncommitted: 0, busy: null, since: 0 };

  /**
   * Work on the second connection, one statement after another, beside the loading: a large
   * table's index build while the next tables load, the foreign-key check while the triggers
   * are made. A failure is thrown where it is awaited.
   */
  private sideWork: Promise<void> = Promise.resolve();

  constructor(
    private readonly conn: PoolConnection,
    private readonly side: PoolConnection,
    private readonly opts: RestoreOptions,
    private readonly resume: boolean,
  ) {}

  private beside(fn: () => Promise<void>): void {
    this.sideWork = this.sideWork.then(fn);
    this.sideWork.catch(() => undefined);
  }

  async run(
    source: AsyncIterable<Uint8Array>,
    onMarked: () => void,
  ): Promise<Omit<RestoreResult, 'ms'>> {
    const conn = this.conn;
    await conn.query('SET SESSION FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0');
    await this.loadingMode();
    const [vars] = await queryRows(conn, 'SELECT @@max_allowed_packet AS p');
    this.maxPacket = Number(vars?.p ?? this.maxPacket);
    this.batchBytes = Math.max(16_384, Math.min(BATCH_BYTES, Math.floor(this.maxPacket / 3)));
    if (this.resume) {
      this.done = await readProgress(conn);
      // Views, routines, triggers and events are made last; whatever of them an earlier attempt
      // made is made again.
      await this.dropObjects();
    }
    this.existing = new Set(
      (
        await queryRows(
          conn,
          "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
        )
      ).map((r) => String(r.t)),
    );

    const hash = createHash('sha256');
    let end: { tables: number; rows: number; sha256: string } | null = null;

    for await (const line of ndjsonLines(source, 2 * this.maxPacket + 4_194_304, (n) => {
      this.bytesIn += n;
    })) {
      if (end) throw bad('it goes on after its end record');
      const rec = parseRecord(line);
      if (rec.kind === 'end') {
        end = { tables: num(rec.tables), rows: num(rec.rows), sha256: str(rec.sha256) };
        if (end.sha256 !== hash.digest('hex')) {
          throw bad('its checksum does not match what arrived (the stream was damaged)');
        }
        continue;
      }
      hash.update(line);
      hash.update(NEWLINE);
      if (!this.begin) {
        if (rec.kind !== 'begin') throw bad('it does not start with a begin record');
        this.begin = checkBegin(rec, this.opts.parentNodeId);
        this.sameSnapshot =
          this.done.source !== null &&
          this.done.source.parentNodeId === this.begin.node.nodeId &&
          this.done.source.snapshotId === this.begin.snapshotId;
        continue;
      }
      switch (rec.kind) {
        case 'table':
          await this.table(rec, onMarked);
          break;
        case 'routine': {
          const name = str(rec.name);
          const type = rec.type === 'FUNCTION' ? 'FUNCTION' : 'PROCEDURE';
          if (rec.type !== type) throw bad(`the routine ${name} has no valid type`);
          const ddl = stripDefiner(str(rec.ddl));
          expectHead(
            ddl,
            new RegExp(`^CREATE\\s+(?:AGGREGATE\\s+)?${type}\\s+${nameRe(name)}\\s*\\(`, 'i'),
            type.toLowerCase(),
            name,
          );
          this.routines.push({ kind: 'routine', name, type, ddl, sqlMode: str(rec.sqlMode) });
          break;
        }
        case 'view': {
          const name = str(rec.name);
          const ddl = stripDefiner(str(rec.ddl));
          expectHead(
            ddl,
            new RegExp(
              `^CREATE (?:ALGORITHM=\\w+ )?(?:SQL SECURITY \\w+ )?VIEW ${re(q(name))} (?:\\(.*?\\) )?AS `,
              's',
            ),
            'view',
            name,
          );
          this.views.push({ kind: 'view', name, ddl });
          break;
        }
        case 'trigger': {
          const name = str(rec.name);
          const table = str(rec.table);
          if (!this.tables.has(table)) throw bad(`the trigger ${name} is on an unknown table`);
          const ddl = stripDefiner(str(rec.ddl));
          expectHead(
            ddl,
            new RegExp(`^CREATE\\s+TRIGGER\\s+${nameRe(name)}\\s`, 'i'),
            'trigger',
            name,
          );
          this.triggers.push({
            kind: 'trigger',
            name,
            table,
            ddl,
            sqlMode: str(rec.sqlMode),
            own: rec.own === true,
          });
          break;
        }
        case 'event': {
          const name = str(rec.name);
          const ddl = stripDefiner(str(rec.ddl));
          expectHead(ddl, new RegExp(`^CREATE\\s+EVENT\\s+${nameRe(name)}\\s`, 'i'), 'event', name);
          this.events.push({ kind: 'event', name, ddl, sqlMode: str(rec.sqlMode) });
          break;
        }
        case 'rows':
          await this.rowsRecord(rec, line);
          break;
        case 'same':
          this.same(rec);
          break;
        case 'count':
          await this.count(rec);
          break;
        default:
          throw bad(`it holds a record of an unknown kind`);
      }
    }
    await this.settle();
    if (!this.begin) throw bad('it is empty');
    if (!end) throw bad(CUT_SHORT);
    const missing = [...this.tables.values()].filter((t) => !t.counted);
    if (missing.length) throw bad(`the rows of ${missing[0]!.name} never came`);
    if (end.tables !== this.tables.size || end.rows !== this.rows) {
      throw bad(
        `it declares ${end.tables} tables and ${end.rows} rows but carried ${this.tables.size} and ${this.rows}`,
      );
    }
    await this.dropTablesNotSent();

    // The rest of the schema, after the data so no trigger fires on it.
    this.progress('objects', null, true);
    await this.sideWork;
    await this.addForeignKeys();
    let brokenReferences: BrokenReference[] = [];
    this.beside(async () => {
      brokenReferences = await this.verifyForeignKeys();
    });
    await this.restoreCounters();
    // Routines, triggers and events under the SQL mode they were made with (it becomes part of
    // them); views as SHOW CREATE VIEW printed them, under no mode.
    for (const r of this.routines) await this.withSqlMode(r.sqlMode, () => conn.query(r.ddl));
    await this.loadingMode();
    await this.createViews();
    for (const t of this.triggers) await this.withSqlMode(t.sqlMode, () => conn.query(t.ddl));
    for (const e of this.events) await this.withSqlMode(e.sqlMode, () => conn.query(e.ddl));
    await this.loadingMode();

    this.progress('verify', null, true);
    await this.verifyObjects();
    await this.sideWork;
    await conn.query('SET SESSION FOREIGN_KEY_CHECKS = 1, UNIQUE_CHECKS = 1');
    await conn.query(`UPDATE ${q(META_TABLE)} SET v = ? WHERE k = ?`, [
      `loaded from ${this.begin.node.name}, not adopted yet`,
      CLONE_INCOMPLETE,
    ]);
    this.progress('done', null, true);
    return {
      begin: this.begin,
      tables: this.tables.size,
      rows: this.rows,
      appTables: [...this.tables.keys()].filter((n) => !isOwnName(n)).length,
      appRows: this.appRows,
      views: this.views.length,
      routines: this.routines.length,
      triggers: this.triggers.length,
      events: this.events.length,
      bytes: this.bytesIn,
      chunksLoaded: this.chunksLoaded,
      chunksKept: this.chunksKept,
      rowsKept: this.rowsKept,
      brokenReferences,
    };
  }

  /** Waits for every chunk being written; a failure is thrown here. */
  private async flush(): Promise<void> {
    const busy = this.writer.busy;
    this.writer.busy = null;
    if (busy) await busy;
  }

  /** Everything written so far, committed. */
  private async settle(): Promise<void> {
    await this.flush();
    await this.commit();
  }

  /**
   * After a failure: the chunks written whole are committed with their records (the next
   * attempt keeps them; their digests are of the rows as they arrived); a chunk that failed to
   * be written has rolled its transaction back.
   */
  async stop(): Promise<void> {
    const busy = this.writer.busy;
    this.writer.busy = null;
    if (busy) await busy.catch(() => undefined);
    await this.commit().catch(() => undefined);
    await this.sideWork.catch(() => undefined);
  }

  private async table(rec: Json, onMarked: () => void): Promise<void> {
    const conn = this.conn;
    if (this.rowsStarted) throw bad('a table arrived after the rows');
    const name = str(rec.name);
    if (this.tables.has(name)) throw bad(`the table ${name} comes twice`);
    if (!this.tables.size && name !== META_TABLE) throw bad(`its first table is not ${META_TABLE}`);
    if (name === PROGRESS_TABLE)
      throw bad(`it carries the table ${name}, which is the child's own`);
    const ddl = str(rec.ddl);
    expectHead(ddl, new RegExp(`^CREATE TABLE ${re(q(name))} \\(`), 'table', name);
    const digest = ddlDigest(ddl);
    const prior = this.done.tables.get(name);
    const kept =
      this.existing.has(name) &&
      (name === META_TABLE || (prior?.ddlDigest === digest && this.begin !== null));
    const estimated = rec.estimatedRows === undefined ? 0 : num(rec.estimatedRows);
    // Indexes are worth building after the rows only where there are many rows: a small table
    // is made whole (one statement instead of three).
    const split =
      name !== META_TABLE &&
      estimated >= (this.opts.deferIndexesFromRows ?? DEFER_INDEXES_FROM_ROWS)
        ? splitCreateTable(ddl)
        : asIs(ddl);
    if (!kept) {
      if (this.existing.has(name)) {
        await conn.query(`DROP TABLE ${q(name)}`);
        await forgetChunks(conn, name, -1);
      }
      await this.createTable(name, ddl, split);
    }
    if (name === META_TABLE) {
      if (!kept) {
        await conn.query(`INSERT INTO ${q(META_TABLE)} (k, v) VALUES (?, ?)`, [
          CLONE_INCOMPLETE,
          `loading from ${this.begin!.node.name} since ${new Date().toISOString()}`,
        ]);
      }
      onMarked();
      await conn.query(PROGRESS_DDL);
      await recordSource(conn, {
        parentNodeId: this.begin!.node.nodeId,
        snapshotId: this.begin!.snapshotId ?? '',
      });
    } else if (!kept) {
      await recordDefinition(conn, name, digest);
    }
    const key = name === META_TABLE ? null : await this.keyColumns(name);
    let chunks = kept && key ? [...(prior?.chunks ?? [])] : [];
    if (kept && key) {
      // Of the chunks held, those the parent checks (or, for the same snapshot read again, all).
      const checked =
        typeof rec.checked === 'number' ? rec.checked : this.sameSnapshot ? chunks.length : 0;
      chunks = chunks.slice(0, Math.min(chunks.length, checked));
      // Rows after the last chunk kept go: those of chunks the parent no longer checks.
      await this.deleteRange(name, key, chunks.at(-1)?.last ?? null, null);
      await forgetChunks(conn, name, chunks.length);
    }
    this.estimatedRows += estimated;
    this.tables.set(name, {
      name,
      carried: rec.rows === true,
      estimatedRows: estimated,
      received: 0,
      counted: false,
      writable: null,
      key,
      split,
      autoIncrement: autoIncrementOf(ddl),
      kept,
      chunks,
      nextChunk: 0,
      // A kept table without recorded chunks (no key, or the meta table) is loaded whole again.
      cleared: !kept || key !== null,
    });
    this.progress('schema', name);
  }

  /** Makes a table with its primary key only; as the parent printed it where that fails. */
  private async createTable(name: string, ddl: string, split: SplitTable): Promise<void> {
    try {
      await this.conn.query(split.create);
    } catch (e) {
      if (split.create === ddl) throw e;
      await this.conn.query(`DROP TABLE IF EXISTS ${q(name)}`);
      await this.conn.query(ddl);
      split.indexes = [];
      split.indexNames = [];
      split.foreignKeys = [];
      split.foreignKeyNames = [];
    }
  }

  private async keyColumns(table: string): Promise<KeyColumn[] | null> {
    const rows = await queryRows(
      this.conn,
      `SELECT c.COLUMN_NAME AS n, c.DATA_TYPE AS d, c.COLUMN_TYPE AS t, c.EXTRA AS x
         FROM information_schema.STATISTICS s
         JOIN information_schema.COLUMNS c
           ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME
        WHERE s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = ? AND s.INDEX_NAME = 'PRIMARY'
        ORDER BY s.SEQ_IN_INDEX`,
      [table],
    );
    // A generated key column is not in the rows, so its chunks cannot be told apart by key.
    if (!rows.length || rows.some((r) => /\b(virtual|stored|persistent)\b/i.test(String(r.x)))) {
      return null;
    }
    return rows.map((r) => ({
      name: String(r.n),
      dataType: String(r.d).toLowerCase(),
      unsigned: /\bunsigned\b/i.test(String(r.t)),
    }));
  }

  private async deleteRange(
    table: string,
    key: KeyColumn[],
    after: StoredValue[] | null,
    upTo: StoredValue[] | null,
  ): Promise<string> {
    const range = keyRangeSql(key, after, upTo);
    const sql = format(`DELETE FROM ${q(table)} WHERE ${range.sql}`, range.params);
    if (upTo === null) await this.conn.query(sql);
    return sql;
  }

  private async rowsRecord(rec: Json, line: Buffer): Promise<void> {
    this.rowsStarted = true;
    const t = this.tables.get(str(rec.table));
    if (!t) throw bad(`rows arrived for an unknown table`);
    if (!t.carried || t.counted) throw bad(`rows arrived for ${t.name} where none belong`);
    const chunk = num(rec.chunk);
    if (chunk !== t.nextChunk) throw bad(`a chunk of ${t.name} is out of order`);
    t.nextChunk++;
    const columns = strings(rec.columns);
    const rows = rec.rows;
    if (!Array.isArray(rows)) throw bad(`a chunk of ${t.name} has no rows`);
    const digest = digestOfRows(line);
    const held = t.key ? t.chunks[chunk] : undefined;
    if (held && held.digest === digest && held.rows === rows.length) {
      this.keep(t, held.rows);
      return;
    }
    t.writable ??= await this.writableColumns(t.name);
    for (const c of columns) {
      if (!t.writable.names.has(c))
        throw bad(`the table ${t.name} has no writable column ${c.slice(0, 64)}`);
    }
    if (new Set(columns).size !== columns.length) throw bad(`a column of ${t.name} comes twice`);
    const statements: string[] = [];
    if (!t.cleared) {
      // Loaded whole again: what an earlier attempt left of it goes first.
      t.cleared = true;
      statements.push(
        t.name === META_TABLE
          ? format(`DELETE FROM ${q(META_TABLE)} WHERE k <> ?`, [CLONE_INCOMPLETE])
          : `DELETE FROM ${q(t.name)}`,
      );
    }
    let last: StoredValue[] | null = null;
    if (held) {
      // A chunk held from an earlier attempt that changed since: its key range is replaced.
      last = Array.isArray(rec.last) ? (rec.last as StoredValue[]) : null;
      if (!sameKey(last, held.last)) throw bad(`a changed chunk of ${t.name} has another range`);
      statements.push(
        await this.deleteRange(t.name, t.key!, t.chunks[chunk - 1]?.last ?? null, held.last),
      );
    } else if (t.key) {
      if (chunk !== t.chunks.length) throw bad(`a chunk of ${t.name} is out of order`);
      if (!Array.isArray(rec.last) || rec.last.length !== t.key.length) {
        throw bad(`a chunk of ${t.name} does not say where it ends`);
      }
      last = rec.last as StoredValue[];
    }
    const values = rows.map((raw) => toRow(raw, columns.length, t.name));
    const done = last ? { chunk, last, digest, rows: rows.length } : null;
    if (done && !held) t.chunks.push(done);
    else if (done && held) t.chunks[chunk] = done;
    t.received += rows.length;
    this.rows += rows.length;
    if (!isOwnName(t.name)) this.appRows += rows.length;
    this.chunksLoaded++;
    await this.write({
      table: t,
      deleting: statements,
      columns,
      rows: values,
      tsv: this.loadData ? loadData(columns, values, t.writable.autoIncrement) : null,
      done,
    });
    this.progress('rows', t.name);
  }

  /** Hands a chunk to the writer once the one before it is written, and goes on reading. */
  private async write(c: ChunkWrite): Promise<void> {
    await this.flush();
    const p = this.writeChunk(c);
    p.catch(() => undefined);
    this.writer.busy = p;
  }

  /**
   * A chunk's rows with its record, in the open transaction: chunks are committed a group at a
   * time (about COMMIT_BYTES, or every COMMIT_MS on a slow link); a chunk is committed whole
   * with its record, or not at all.
   */
  private async writeChunk(c: ChunkWrite): Promise<void> {
    const w = this.writer;
    const conn = this.conn;
    if (!w.inTransaction) {
      await conn.query('START TRANSACTION');
      w.inTransaction = true;
      w.since = Date.now();
    }
    try {
      for (const sql of c.deleting) await conn.query(sql);
      if (!(c.tsv && this.loadData && (await this.loadRows(c.table.name, c.tsv)))) {
        for (const sql of this.inserts(c.table.name, c.columns, c.rows)) {
          await conn.query(sql);
          w.uncommitted += sql.length;
        }
      }
      if (c.done) await recordChunk(conn, c.table.name, c.done);
      if (w.uncommitted >= COMMIT_BYTES || Date.now() - w.since >= COMMIT_MS) {
        await this.commit();
      }
    } catch (e) {
      w.inTransaction = false;
      w.uncommitted = 0;
      await conn.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
  }

  /**
   * Loads a chunk by LOAD DATA LOCAL (the server parses tab-separated text far faster than
   * INSERTs; the "file" is the chunk in memory, no file is ever read). False where the server or
   * its settings refuse it (MySQL 8 turns local_infile off): from then on INSERTs are used.
   */
  private async loadRows(table: string, tsv: LoadData): Promise<boolean> {
    try {
      await this.conn.query({
        sql: `LOAD DATA LOCAL INFILE 'chunk' INTO TABLE ${q(table)} CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ${tsv.columns}`,
        infileStreamFactory: () => Readable.from([tsv.text]),
      });
      this.writer.uncommitted += tsv.text.length;
      return true;
    } catch (e) {
      const code = (e as { errno?: number }).errno;
      if (code !== 1148 && code !== 3948 && code !== 2068) throw e;
      this.loadData = false;
      return false;
    }
  }

  /** A chunk as multi-row INSERTs, each at most batchBytes (mysql2's own escaping). */
  private inserts(table: string, columns: string[], rows: Value[][]): string[] {
    const head = `INSERT INTO ${q(table)} (${columns.map(q).join(', ')}) VALUES `;
    const statements: string[] = [];
    let values: string[] = [];
    let size = head.length;
    for (const row of rows) {
      const v = `(${row.map((x) => escape(x)).join(', ')})`;
      if (values.length && (values.length >= BATCH_ROWS || size + v.length > this.batchBytes)) {
        statements.push(head + values.join(', '));
        values = [];
        size = head.length;
      }
      values.push(v);
      size += v.length + 2;
    }
    if (values.length) statements.push(head + values.join(', '));
    return statements;
  }

  /** Commits the chunks written so far (before DDL, which would commit them anyway). */
  private async commit(): Promise<void> {
    const w = this.writer;
    if (!w.inTransaction) return;
    w.inTransaction = false;
    w.uncommitted = 0;
    await this.conn.query('COMMIT');
  }

  private keep(t: TableState, rows: number): void {
    t.received += rows;
    this.rows += rows;
    this.rowsKept += rows;
    if (!isOwnName(t.name)) this.appRows += rows;
    this.chunksKept++;
    this.progress('rows', t.name);
  }

  private same(rec: Json): void {
    this.rowsStarted = true;
    const t = this.tables.get(str(rec.table));
    if (!t) throw bad('a checked chunk arrived for an unknown table');
    const chunk = num(rec.chunk);
    const held = t.chunks[chunk];
    if (chunk !== t.nextChunk || !held || held.rows !== num(rec.rows) || t.counted) {
      throw bad(`it says a chunk of ${t.name} is unchanged that this clinic does not hold`);
    }
    t.nextChunk++;
    this.keep(t, held.rows);
  }

  private async count(rec: Json): Promise<void> {
    this.rowsStarted = true;
    const t = this.tables.get(str(rec.table));
    if (!t) throw bad('a count arrived for an unknown table');
    if (t.counted) throw bad(`the count of ${t.name} comes twice`);
    await this.settle();
    const declared = num(rec.rows);
    if (declared !== t.received) {
      throw bad(`it declares ${declared} rows of ${t.name} but carried ${t.received}`);
    }
    if (!t.cleared) {
      // A kept table loaded whole again that now has no rows.
      t.cleared = true;
      await this.conn.query(
        t.name === META_TABLE
          ? format(`DELETE FROM ${q(META_TABLE)} WHERE k <> ?`, [CLONE_INCOMPLETE])
          : `DELETE FROM ${q(t.name)}`,
      );
    }
    if (t.key && t.chunks.length > t.nextChunk) {
      throw bad(`it ends ${t.name} before the chunks this clinic holds`);
    }
    const [c] = await queryRows(
      this.conn,
      t.name === META_TABLE
        ? `SELECT COUNT(*) AS n FROM ${q(t.name)} WHERE k <> ?`
        : `SELECT COUNT(*) AS n FROM ${q(t.name)}`,
      t.name === META_TABLE ? [CLONE_INCOMPLETE] : [],
    );
    const loaded = Number(c?.n ?? -1);
    if (loaded !== declared) {
      throw new SyncError(
        'database',
        `The table ${t.name} holds ${loaded} rows after loading, not the ${declared} the parent sent.`,
      );
    }
    this.beside(() => this.addIndexes(t));
    t.counted = true;
    this.tablesDone++;
    this.progress('rows', t.name, true);
  }

  /** The indexes left out of a table, built in one pass now that its rows are in. */
  private async addIndexes(t: TableState): Promise<void> {
    const missing = await this.missing(
      this.side,
      t.split.indexNames,
      'SELECT DISTINCT INDEX_NAME AS n FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
      t.name,
    );
    const clauses = t.split.indexes.filter((_, i) => missing.has(t.split.indexNames[i]!));
    if (clauses.length) await this.side.query(`ALTER TABLE ${q(t.name)} ${clauses.join(', ')}`);
  }

  /** The foreign keys left out, added in place (checks are off) once every table is loaded. */
  private async addForeignKeys(): Promise<void> {
    for (const t of this.tables.values()) {
      if (!t.split.foreignKeys.length) continue;
      const missing = await this.missing(
        this.conn,
        t.split.foreignKeyNames,
        'SELECT CONSTRAINT_NAME AS n FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?',
        t.name,
      );
      const clauses = t.split.foreignKeys.filter((_, i) =>
        missing.has(t.split.foreignKeyNames[i]!),
      );
      if (clauses.length) await this.conn.query(`ALTER TABLE ${q(t.name)} ${clauses.join(', ')}`);
    }
  }

  private async missing(
    conn: PoolConnection,
    names: string[],
    sql: string,
    table: string,
  ): Promise<Set<string>> {
    if (!names.length) return new Set();
    const present = new Set((await queryRows(conn, sql, [table])).map((r) => String(r.n)));
    return new Set(names.filter((n) => !present.has(n)));
  }

  /** A table kept from an earlier attempt gets the parent's counter of this snapshot. */
  private async restoreCounters(): Promise<void> {
    for (const t of this.tables.values()) {
      if (t.kept && t.autoIncrement !== null && t.name !== META_TABLE) {
        await this.conn.query(`ALTER TABLE ${q(t.name)} AUTO_INCREMENT = ?`, [
          Number(t.autoIncrement),
        ]);
      }
    }
  }

  /** Tables an earlier attempt made that the parent no longer has. */
  private async dropTablesNotSent(): Promise<void> {
    for (const name of this.existing) {
      if (!this.tables.has(name) && name !== PROGRESS_TABLE) {
        await this.conn.query(`DROP TABLE IF EXISTS ${q(name)}`);
        await forgetChunks(this.conn, name, -1);
      }
    }
  }

  private async dropObjects(): Promise<void> {
    const conn = this.conn;
    const list = (sql: string) => queryRows(conn, sql);
    for (const r of await list(
      'SELECT TABLE_NAME AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()',
    )) {
      await conn.query(`DROP VIEW IF EXISTS ${q(String(r.n))}`);
    }
    for (const r of await list(
      'SELECT ROUTINE_NAME AS n, ROUTINE_TYPE AS t FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()',
    )) {
      await conn.query(
        `DROP ${r.t === 'FUNCTION' ? 'FUNCTION' : 'PROCEDURE'} IF EXISTS ${q(String(r.n))}`,
      );
    }
    for (const r of await list(
      'SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()',
    )) {
      await conn.query(`DROP TRIGGER IF EXISTS ${q(String(r.n))}`);
    }
    for (const r of await list(
      'SELECT EVENT_NAME AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()',
    )) {
      await conn.query(`DROP EVENT IF EXISTS ${q(String(r.n))}`);
    }
  }

  /** Columns of a table here that an INSERT may name (not generated ones), and its counter's. */
  private async writableColumns(table: string): Promise<Writable> {
    const rows = await queryRows(
      this.conn,
      `SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`,
      [table],
    );
    const names = new Set(
      rows
        .filter((r) => !/\b(virtual|stored|persistent)\b/i.test(String(r.EXTRA ?? '')))
        .map((r) => String(r.COLUMN_NAME)),
    );
    const auto = rows.find((r) => /\bauto_increment\b/i.test(String(r.EXTRA ?? '')));
    return { names, autoIncrement: auto ? String(auto.COLUMN_NAME) : null };
  }

  /** A view may use another: made in passes until none is left or a pass makes none. */
  private async createViews(): Promise<void> {
    let left = [...this.views];
    while (left.length) {
      const failed: { view: ViewRecord; error: unknown }[] = [];
      for (const v of left) {
        try {
          await this.conn.query(v.ddl);
        } catch (error) {
          failed.push({ view: v, error });
        }
      }
      if (failed.length === left.length) {
        const { view, error } = failed[0]!;
        throw new SyncError(
          'database',
          `The view ${view.name} could not be made: ${describe(error)}.`,
          {
            cause: error,
          },
        );
      }
      left = failed.map((f) => f.view);
    }
  }

  /** Every table, view, routine, trigger and event the parent sent now exists here. */
  private async verifyObjects(): Promise<void> {
    const count = async (sql: string, params: unknown[] = []) =>
      Number((await queryRows(this.conn, sql, params))[0]?.n);
    const got = [
      await count(
        "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> ?",
        [PROGRESS_TABLE],
      ),
      await count(
        'SELECT COUNT(*) AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()',
      ),
      await count(
        'SELECT COUNT(*) AS n FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()',
      ),
      await count(
        'SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()',
      ),
      await count(
        'SELECT COUNT(*) AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()',
      ),
    ];
    const want = [
      this.tables.size,
      this.views.length,
      this.routines.length,
      this.triggers.length,
      this.events.length,
    ];
    if (got.some((n, i) => n !== want[i])) {
      throw new SyncError(
        'database',
        `The copy holds ${got[0]} tables, ${got[1]} views, ${got[2]} routines, ${got[3]} triggers and ${got[4]} events, not the ${want[0]}, ${want[1]}, ${want[2]}, ${want[3]} and ${want[4]} the parent sent.`,
      );
    }
  }

  /**
   * Checks every foreign key of the copy, since the rows went in with the checks off. The rows
   * themselves are exactly the parent's (counted per table, and the stream's checksum
   * verified), so a row found referring to nothing does so on the parent too: it is reported,
   * not refused.
   */
  private async verifyForeignKeys(): Promise<BrokenReference[]> {
    const rows = await queryRows(
      this.side,
      `SELECT k.TABLE_NAME AS t, k.CONSTRAINT_NAME AS c, k.COLUMN_NAME AS col,
              k.REFERENCED_TABLE_NAME AS rt, k.REFERENCED_COLUMN_NAME AS rc
         FROM information_schema.KEY_COLUMN_USAGE k
        WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL
          AND k.REFERENCED_TABLE_SCHEMA = DATABASE()
        ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`,
    );
    const byTable = new Map<string, Map<string, { rt: string; pairs: [string, string][] }>>();
    for (const r of rows) {
      const t = String(r.t);
      if (!this.tables.has(t) || !this.tables.has(String(r.rt))) continue;
      let fks = byTable.get(t);
      if (!fks) byTable.set(t, (fks = new Map()));
      let fk = fks.get(String(r.c));
      if (!fk) fks.set(String(r.c), (fk = { rt: String(r.rt), pairs: [] }));
      fk.pairs.push([String(r.col), String(r.rc)]);
    }
    const broken: BrokenReference[] = [];
    for (const [table, fks] of byTable) {
      if (!this.tables.get(table)!.received) continue;
      for (const [constraint, fk] of fks) {
        const notNull = fk.pairs.map(([c]) => `${q(c)} IS NOT NULL`).join(' AND ');
        const match = fk.pairs.map(([c, p]) => `p.${q(p)} = d.${q(c)}`).join(' AND ');
        // The distinct values first, read from the foreign key's own index: a few lookups where
        // a row-by-row check would make one per row. Rows are counted only where one is missing.
        const [missing] = await queryRows(
          this.side,
          `SELECT COUNT(*) AS n FROM (SELECT DISTINCT ${fk.pairs.map(([c]) => q(c)).join(', ')} FROM ${q(table)} WHERE ${notNull}) d
            WHERE NOT EXISTS (SELECT 1 FROM ${q(fk.rt)} p WHERE ${match})`,
        );
        if (!Number(missing?.n)) continue;
        const [rows] = await queryRows(
          this.side,
          `SELECT COUNT(*) AS n FROM ${q(table)} d WHERE ${fk.pairs.map(([c]) => `d.${q(c)} IS NOT NULL`).join(' AND ')}
              AND NOT EXISTS (SELECT 1 FROM ${q(fk.rt)} p WHERE ${match})`,
        );
        broken.push({ table, constraint, referenced: fk.rt, rows: Number(rows?.n ?? 0) });
      }
    }
    return broken;
  }

  /** Runs fn under the SQL mode an object was made with (the modes this server knows). */
  private async withSqlMode<T>(mode: string, fn: () => Promise<T>): Promise<T> {
    let usable = this.modes.get(mode);
    if (usable === undefined) {
      const wanted = mode.split(',').filter((m) => /^[A-Z0-9_]+$/.test(m));
      try {
        await this.conn.query('SET SESSION sql_mode = ?', [wanted.join(',')]);
        usable = wanted.join(',');
      } catch {
        // A mode another server has and this one does not (MySQL and MariaDB differ): keep the
        // ones this server knows.
        const known: string[] = [];
        for (const m of wanted) {
          try {
            await this.conn.query('SET SESSION sql_mode = ?', [[...known, m].join(',')]);
            known.push(m);
          } catch {
            // unknown here
          }
        }
        usable = known.join(',');
      }
      this.modes.set(mode, usable);
    }
    if (usable !== this.mode) {
      await this.conn.query('SET SESSION sql_mode = ?', [usable]);
      this.mode = usable;
    }
    return fn();
  }

  /** Back to the loading mode (after the routines and triggers). */
  private async loadingMode(): Promise<void> {
    await this.conn.query('SET SESSION sql_mode = ?', [LOADING_MODE]);
    this.mode = LOADING_MODE;
  }

  private progress(phase: RestorePhase, table: string | null, force = false): void {
    const report = this.opts.onProgress;
    if (!report) return;
    const now = Date.now();
    if (!force && now - this.lastProgress < 250) return;
    this.lastProgress = now;
    report({
      phase,
      tables: this.tablesDone,
      totalTables: this.tables.size,
      rows: this.rows,
      keptRows: this.rowsKept,
      estimatedRows: this.estimatedRows,
      bytes: this.bytesIn,
      table,
    });
  }
}

async function* ndjsonLines(
  source: AsyncIterable<Uint8Array>,
  maxLine: number,
  onBytes: (n: number) => void,
): AsyncGenerator<Buffer> {
  const gunzip = createGunzip();
  const counted = async function* () {
    for await (const chunk of source) {
      onBytes(chunk.byteLength);
      yield chunk;
    }
  };
  const feeding = pipeline(Readable.from(counted()), gunzip).catch((e: unknown) => {
    gunzip.destroy(e instanceof Error ? e : new Error(String(e)));
  });
  let parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      let from = 0;
      for (let nl = chunk.indexOf(10, from); nl !== -1; nl = chunk.indexOf(10, from)) {
        parts.push(chunk.subarray(from, nl));
        yield parts.length === 1 ? parts[0]! : Buffer.concat(parts);
        parts = [];
        size = 0;
        from = nl + 1;
      }
      if (from < chunk.length) {
        parts.push(chunk.subarray(from));
        size += chunk.length - from;
        if (size > maxLine) throw bad('one of its lines is too long');
      }
    }
  } catch (e) {
    if (isSyncError(e)) throw e;
    const code = (e as { code?: string }).code ?? '';
    if (code === 'Z_BUF_ERROR') throw bad(CUT_SHORT);
    if (code.startsWith('Z_')) throw bad('it is not a valid gzip stream');
    throw new SyncError('unreachable', `The snapshot stopped arriving: ${describe(e)}.`, {
      cause: e,
    });
  } finally {
    gunzip.destroy();
    await feeding;
  }
  if (size) throw bad('it stops in the middle of a line');
}

type Json = Record<string, unknown>;

function parseRecord(line: Buffer): Json & { kind: string } {
  let v: unknown;
  try {
    v = JSON.parse(line.toString('utf8'));
  } catch {
    throw bad('a line of it is not JSON');
  }
  if (
    typeof v !== 'object' ||
    v === null ||
    Array.isArray(v) ||
    typeof (v as Json).kind !== 'string'
  ) {
    throw bad('a line of it is not a record');
  }
  return v as Json & { kind: string };
}

function checkBegin(rec: Json, parentNodeId: string | undefined): BeginRecord {
  if (rec.format !== SNAPSHOT_FORMAT) throw bad('it is not a ClinicSync snapshot');
  const version = num(rec.version);
  if (version > SNAPSHOT_VERSION) {
    throw new SyncError(
      'protocol',
      `The snapshot was written by a newer ClinicSync (format ${version}); install the newer version here first.`,
    );
  }
  const schemaVersion = num(rec.schemaVersion);
  if (schemaVersion > SCHEMA_VERSION) {
    throw new SyncError(
      'protocol',
      `The parent runs a newer ClinicSync (schema ${schemaVersion}, this one knows ${SCHEMA_VERSION}); install the newer version here first.`,
    );
  }
  const node = rec.node as Json | undefined;
  if (typeof node !== 'object' || node === null) throw bad('its begin record names no node');
  const begin: BeginRecord = {
    kind: 'begin',
    format: SNAPSHOT_FORMAT,
    version,
    schemaVersion,
    database: str(rec.database),
    sqlMode: str(rec.sqlMode),
    server: str(rec.server),
    node: { nodeId: str(node.nodeId), name: str(node.name), incarnation: str(node.incarnation) },
    at: str(rec.at),
    chunkRows: num(rec.chunkRows),
  };
  if (typeof rec.snapshotId === 'string' && /^[0-9a-f]{1,64}$/.test(rec.snapshotId)) {
    begin.snapshotId = rec.snapshotId;
  }
  // The parent's table choice, when it sent a valid one (older parents send none).
  const tables = tablesSchema.safeParse(rec.tables);
  if (tables.success) begin.tables = tables.data;
  if (parentNodeId !== undefined && begin.node.nodeId !== parentNodeId) {
    throw new SyncError(
      'protocol',
      `The snapshot comes from node ${begin.node.nodeId}, not from the parent this clinic paired with.`,
    );
  }
  return begin;
}

const TSV_SPECIAL = /[\\\t\n\r\0]/;
const TSV_SPECIALS = /[\\\t\n\r\0]/g;
const TSV_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
  '\0': '\\0',
};

/**
 * Rows as LOAD DATA reads them: tab-separated, `\N` for NULL, backslash escapes; a column with
 * bytes in it goes as hex into a variable and through UNHEX (bytes are not text in any
 * character set).
 */
function loadData(
  columns: string[],
  rows: Value[][],
  autoIncrement: string | null,
): LoadData | null {
  const bytes = columns.map((_, i) => rows.some((r) => Buffer.isBuffer(r[i])));
  // MariaDB's LOAD DATA with a SET clause turns an explicit 0 into the next counter value
  // whatever NO_AUTO_VALUE_ON_ZERO says: such a chunk goes in by INSERT.
  const auto = autoIncrement === null ? -1 : columns.indexOf(autoIncrement);
  if (auto >= 0 && bytes.some(Boolean) && rows.some((r) => r[auto] === '0')) return null;
  // Appended to one string (V8 joins the pieces once, at the end); most text needs no escape.
  let text = '';
  for (const row of rows) {
    for (let i = 0; i < row.length; i++) {
      const v = row[i]!;
      if (i) text += '\t';
      if (v === null) text += '\\N';
      else if (bytes[i]) text += (Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8')).toString('hex');
      else if (TSV_SPECIAL.test(v as string)) {
        text += (v as string).replace(TSV_SPECIALS, (c) => TSV_ESCAPES[c]!);
      } else text += v as string;
    }
    text += '\n';
  }
  const list = columns.map((c, i) => (bytes[i] ? `@v${i}` : q(c))).join(', ');
  const sets = columns.flatMap((c, i) => (bytes[i] ? [`${q(c)} = UNHEX(@v${i})`] : []));
  return {
    text: Buffer.from(text, 'utf8'),
    columns: `(${list})${sets.length ? ` SET ${sets.join(', ')}` : ''}`,
  };
}

const ROWS_FIELD = Buffer.from(',"rows":');
const LAST_FIELD = Buffer.from(',"last":');

/**
 * The digest of a chunk's rows as they arrived: of the exact text of its `rows` field, as the
 * parent digests the same rows read again (rowsDigest). Neither field name can occur inside a
 * JSON string unescaped, so the first `,"rows":` and the last `,"last":` bound the field.
 */
function digestOfRows(line: Buffer): string {
  const from = line.indexOf(ROWS_FIELD);
  const to = line.lastIndexOf(LAST_FIELD);
  if (from < 0 || to < from) throw bad('a chunk of it is not shaped as a chunk');
  return createHash('sha512-256')
    .update(line.subarray(from + ROWS_FIELD.length, to))
    .digest('hex');
}

function toRow(raw: unknown, width: number, table: string): Value[] {
  if (!Array.isArray(raw) || raw.length !== width)
    throw bad(`a row of ${table} has the wrong shape`);
  return raw.map((v: unknown) => {
    if (v === null || typeof v === 'string') return v;
    if (typeof v === 'object' && typeof (v as { b?: unknown }).b === 'string') {
      return fromStored(v as StoredValue);
    }
    throw bad(`a value of ${table} is neither text, bytes nor null`);
  });
}

function expectHead(ddl: string, head: RegExp, what: string, name: string): void {
  if (!head.test(ddl))
    throw bad(`the ${what} ${name.slice(0, 64)} is not a plain CREATE ${what.toUpperCase()}`);
}

/** A name as SHOW CREATE may print it: quoted, or bare where it needs no quotes. */
function nameRe(name: string): string {
  return /^\w+$/.test(name) ? `(?:${re(q(name))}|${name})` : re(q(name));
}

function re(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function str(v: unknown): string {
  if (typeof v !== 'string') throw bad('a record lacks a text field');
  return v;
}

function num(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw bad('a record lacks a count');
  return v;
}

function strings(v: unknown): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
    throw bad('a chunk has no column list');
  return v as string[];
}

function bad(why: string): SyncError {
  return new SyncError('protocol', `The snapshot cannot be used: ${why}.`);
}

function describe(e: unknown): string {
  return (e instanceof Error ? e.message : String(e))
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/\.$/, '');
}
