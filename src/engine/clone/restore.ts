import { tablesSchema } from '../config/settings.js';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { DbTarget } from '../db/url.js';
import { explainDbError, openPool, queryRows, type PoolConnection } from '../db/pool.js';
import { q } from '../db/ident.js';
import { isOwnName } from '../db/schema.js';
import { SyncError, isSyncError } from '../errors.js';
import { fromStored, type StoredValue, type Value } from '../capture/values.js';
import { SCHEMA_VERSION } from '../node/migrations.js';
import {
  META_TABLE,
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  stripDefiner,
  type BeginRecord,
  type RoutineRecord,
  type TriggerRecord,
  type ViewRecord,
} from './snapshot.js';

/**
 * The child's side of a clone: loads a snapshot stream (snapshot.ts) into an empty database.
 * Tables first, then rows by multi-row INSERTs with foreign-key and unique checks off, then
 * routines, views and triggers (after the data, so loading fires none), then the counts and the
 * stream's checksum are verified. From its first table on, the database carries the meta row
 * `clone_incomplete`: until SyncNode.adoptClone makes it a child, no ClinicSync engine opens it.
 */

/** The meta key that marks a database as an unfinished clone; adoption removes it. */
export const CLONE_INCOMPLETE = 'clone_incomplete';

export type RestorePhase = 'schema' | 'rows' | 'objects' | 'verify' | 'done';

export interface RestoreProgress {
  phase: RestorePhase;
  /** tables whose rows are all loaded, of `totalTables` */
  tables: number;
  totalTables: number;
  rows: number;
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
  onProgress?: (p: RestoreProgress) => void;
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
  bytes: number;
  ms: number;
}

/** Rows per INSERT, and its size in bytes at most (further capped by max_allowed_packet). */
const BATCH_ROWS = 500;
const BATCH_BYTES = 1_000_000;
const NEWLINE = Buffer.from('\n');
/** No SQL mode while loading (zero dates and the parent's values go in as they are), except that
 * an explicit 0 in an auto-increment column stays 0. */
const LOADING_MODE = 'NO_AUTO_VALUE_ON_ZERO';
const CUT_SHORT = 'it stops before its end (the connection was cut or the parent failed)';

interface TableState {
  name: string;
  carried: boolean;
  estimatedRows: number;
  received: number;
  counted: boolean;
  /** columns that may be written, from the child's own information_schema */
  writable: Set<string> | null;
}

/**
 * Loads the gzip'd snapshot in `source` into the empty database `opts.db`. Refuses a database
 * that holds anything. On failure the database is left marked unusable (clone_incomplete) and the
 * error says so.
 */
export async function restoreSnapshot(
  source: AsyncIterable<Uint8Array>,
  opts: RestoreOptions,
): Promise<RestoreResult> {
  const started = Date.now();
  const pool = openPool(opts.db, { connectionLimit: 1 });
  let conn: PoolConnection | null = null;
  let marked = false;
  try {
    try {
      conn = await pool.getConnection();
    } catch (e) {
      throw explainDbError(e, opts.db);
    }
    await assertEmptyDatabase(conn, opts.db.database);
    const loader = new Loader(conn, opts);
    try {
      const result = await loader.run(source, () => {
        marked = true;
      });
      return { ...result, ms: Date.now() - started };
    } catch (e) {
      const reason = describe(e);
      if (marked) {
        await markFailed(conn, reason).catch(() => undefined);
        throw new SyncError(
          isSyncError(e) ? e.kind : 'database',
          `${reason}; the database "${opts.db.database}" is left marked as an unfinished clone and cannot be used, so run the same clone command again to start it over.`,
          { cause: e },
        );
      }
      throw isSyncError(e) ? e : explainDbError(e, opts.db);
    }
  } finally {
    conn?.destroy();
    await pool.end().catch(() => undefined);
  }
}

/** What a database holds, counted for the refusal sentence. */
export interface DatabaseContents {
  tables: number;
  views: number;
  routines: number;
  events: number;
  /** it holds a clone that never finished */
  unfinishedClone: boolean;
}

export async function databaseContents(
  conn: PoolConnection,
  database: string,
): Promise<DatabaseContents> {
  const [t] = await queryRows(
    conn,
    `SELECT SUM(TABLE_TYPE = 'VIEW') AS views, SUM(TABLE_TYPE <> 'VIEW') AS tables,
            SUM(TABLE_NAME = ?) AS meta
       FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`,
    [META_TABLE, database],
  );
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
  if (Number(t?.meta ?? 0) > 0) {
    const rows = await queryRows(conn, `SELECT 1 FROM ${q(META_TABLE)} WHERE k = ?`, [
      CLONE_INCOMPLETE,
    ]);
    unfinishedClone = rows.length > 0;
  }
  return {
    tables: Number(t?.tables ?? 0),
    views: Number(t?.views ?? 0),
    routines: Number(r?.n ?? 0),
    events: Number(ev?.n ?? 0),
    unfinishedClone,
  };
}

/** Throws one sentence naming what the database holds, unless it holds nothing. */
export async function assertEmptyDatabase(conn: PoolConnection, database: string): Promise<void> {
  const c = await databaseContents(conn, database);
  const parts = [
    counted(c.tables, 'table'),
    counted(c.views, 'view'),
    counted(c.routines, 'stored routine'),
    counted(c.events, 'event'),
  ].filter((s): s is string => s !== null);
  if (!parts.length) return;
  const what = parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}` : parts[0];
  if (c.unfinishedClone) {
    throw new SyncError(
      'state',
      `The database ${database} holds a clone that did not finish (${what}); drop it and create it again, empty, then run clone again.`,
    );
  }
  throw new SyncError(
    'state',
    `The database ${database} already has ${what}; clone needs an empty database.`,
  );
}

function counted(n: number, noun: string): string | null {
  if (!n) return null;
  return `${n.toLocaleString('en-US')} ${noun}${n === 1 ? '' : 's'}`;
}

async function markFailed(conn: PoolConnection, reason: string): Promise<void> {
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
  private rowsStarted = false;
  private rows = 0;
  private appRows = 0;
  private tablesDone = 0;
  private bytesIn = 0;
  private estimatedRows = 0;
  private maxPacket = 16 * 1_048_576;
  private lastProgress = 0;
  /** the session's SQL mode now, and what each object's mode comes to on this server */
  private mode = '';
  private readonly modes = new Map<string, string>();

  constructor(
    private readonly conn: PoolConnection,
    private readonly opts: RestoreOptions,
  ) {}

  async run(
    source: AsyncIterable<Uint8Array>,
    onMarked: () => void,
  ): Promise<Omit<RestoreResult, 'ms'>> {
    const conn = this.conn;
    await conn.query('SET SESSION FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0');
    await this.loadingMode();
    const [vars] = await queryRows(conn, 'SELECT @@max_allowed_packet AS p');
    this.maxPacket = Number(vars?.p ?? this.maxPacket);
    const batchBytes = Math.max(16_384, Math.min(BATCH_BYTES, Math.floor(this.maxPacket / 3)));

    const hash = createHash('sha256');
    let end: { tables: number; rows: number; sha256: string } | null = null;
    let pending: {
      table: TableState;
      sql: string;
      columns: string[];
      rows: Value[][];
      bytes: number;
    } | null = null;
    const flush = async () => {
      if (!pending || !pending.rows.length) return;
      const p = pending;
      const one = `(${p.columns.map(() => '?').join(', ')})`;
      await conn.query(`${p.sql} ${p.rows.map(() => one).join(', ')}`, p.rows.flat());
      p.rows = [];
      p.bytes = 0;
    };

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
        continue;
      }
      switch (rec.kind) {
        case 'table': {
          if (this.rowsStarted) throw bad('a table arrived after the rows');
          const name = str(rec.name);
          if (this.tables.has(name)) throw bad(`the table ${name} comes twice`);
          if (!this.tables.size && name !== META_TABLE) {
            throw bad(`its first table is not ${META_TABLE}`);
          }
          const ddl = str(rec.ddl);
          expectHead(ddl, new RegExp(`^CREATE TABLE ${re(q(name))} \\(`), 'table', name);
          await conn.query(ddl);
          if (name === META_TABLE) {
            await conn.query(`INSERT INTO ${q(META_TABLE)} (k, v) VALUES (?, ?)`, [
              CLONE_INCOMPLETE,
              `loading from ${this.begin.node.name} since ${new Date().toISOString()}`,
            ]);
            onMarked();
          }
          const estimated = rec.estimatedRows === undefined ? 0 : num(rec.estimatedRows);
          this.estimatedRows += estimated;
          this.tables.set(name, {
            name,
            carried: rec.rows === true,
            estimatedRows: estimated,
            received: 0,
            counted: false,
            writable: null,
          });
          this.progress('schema', name);
          break;
        }
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
        case 'rows': {
          this.rowsStarted = true;
          const t = this.tables.get(str(rec.table));
          if (!t) throw bad(`rows arrived for an unknown table`);
          if (!t.carried || t.counted) throw bad(`rows arrived for ${t.name} where none belong`);
          const columns = strings(rec.columns);
          const rows = rec.rows;
          if (!Array.isArray(rows)) throw bad(`a chunk of ${t.name} has no rows`);
          t.writable ??= await this.writableColumns(t.name);
          if (!pending || pending.table !== t || !sameList(pending.columns, columns)) {
            await flush();
            for (const c of columns) {
              if (!t.writable.has(c))
                throw bad(`the table ${t.name} has no writable column ${c.slice(0, 64)}`);
            }
            if (new Set(columns).size !== columns.length)
              throw bad(`a column of ${t.name} comes twice`);
            pending = {
              table: t,
              sql: `INSERT INTO ${q(t.name)} (${columns.map(q).join(', ')}) VALUES`,
              columns,
              rows: [],
              bytes: 0,
            };
          }
          for (const raw of rows) {
            const row = toRow(raw, columns.length, t.name);
            const size = rowBytes(row);
            if (
              pending.rows.length &&
              (pending.rows.length >= BATCH_ROWS || pending.bytes + size > batchBytes)
            ) {
              await flush();
            }
            pending.rows.push(row);
            pending.bytes += size;
          }
          t.received += rows.length;
          this.rows += rows.length;
          if (!isOwnName(t.name)) this.appRows += rows.length;
          this.progress('rows', t.name);
          break;
        }
        case 'count': {
          this.rowsStarted = true;
          const t = this.tables.get(str(rec.table));
          if (!t) throw bad('a count arrived for an unknown table');
          if (t.counted) throw bad(`the count of ${t.name} comes twice`);
          await flush();
          const declared = num(rec.rows);
          if (declared !== t.received) {
            throw bad(`it declares ${declared} rows of ${t.name} but carried ${t.received}`);
          }
          const [c] = await queryRows(
            conn,
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
          t.counted = true;
          this.tablesDone++;
          this.progress('rows', t.name, true);
          break;
        }
        default:
          throw bad(`it holds a record of an unknown kind`);
      }
    }
    if (!this.begin) throw bad('it is empty');
    if (!end) throw bad(CUT_SHORT);
    const missing = [...this.tables.values()].filter((t) => !t.counted);
    if (missing.length) throw bad(`the rows of ${missing[0]!.name} never came`);
    if (end.tables !== this.tables.size || end.rows !== this.rows) {
      throw bad(
        `it declares ${end.tables} tables and ${end.rows} rows but carried ${this.tables.size} and ${this.rows}`,
      );
    }

    // The rest of the schema, after the data so no trigger fires on it.
    this.progress('objects', null, true);
    // Routines and triggers under the SQL mode they were made with (it becomes part of them);
    // views as SHOW CREATE VIEW printed them, under no mode.
    for (const r of this.routines) await this.withSqlMode(r.sqlMode, () => conn.query(r.ddl));
    await this.loadingMode();
    await this.createViews();
    for (const t of this.triggers) await this.withSqlMode(t.sqlMode, () => conn.query(t.ddl));
    await this.loadingMode();
    await conn.query('SET SESSION FOREIGN_KEY_CHECKS = 1, UNIQUE_CHECKS = 1');

    this.progress('verify', null, true);
    await this.verifyObjects();
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
      bytes: this.bytesIn,
    };
  }

  /** Columns of a table just made here that an INSERT may name (not generated ones). */
  private async writableColumns(table: string): Promise<Set<string>> {
    const rows = await queryRows(
      this.conn,
      `SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`,
      [table],
    );
    return new Set(
      rows
        .filter((r) => !/\b(virtual|stored|persistent)\b/i.test(String(r.EXTRA ?? '')))
        .map((r) => String(r.COLUMN_NAME)),
    );
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

  /** Every view, routine and trigger the parent sent now exists here. */
  private async verifyObjects(): Promise<void> {
    const [v] = await queryRows(
      this.conn,
      'SELECT COUNT(*) AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()',
    );
    const [r] = await queryRows(
      this.conn,
      'SELECT COUNT(*) AS n FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()',
    );
    const [t] = await queryRows(
      this.conn,
      'SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()',
    );
    const [b] = await queryRows(
      this.conn,
      "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
    );
    const got = [Number(b?.n), Number(v?.n), Number(r?.n), Number(t?.n)];
    const want = [this.tables.size, this.views.length, this.routines.length, this.triggers.length];
    if (got.some((n, i) => n !== want[i])) {
      throw new SyncError(
        'database',
        `The copy holds ${got[0]} tables, ${got[1]} views, ${got[2]} routines and ${got[3]} triggers, not the ${want[0]}, ${want[1]}, ${want[2]} and ${want[3]} the parent sent.`,
      );
    }
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
      estimatedRows: this.estimatedRows,
      bytes: this.bytesIn,
      table,
    });
  }
}

/** Splits the gunzipped stream into lines (without the newline), each at most maxLine bytes. */
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

function rowBytes(row: Value[]): number {
  let n = 8;
  for (const v of row)
    n += v === null ? 5 : typeof v === 'string' ? 2 * v.length + 3 : 2 * v.length + 3;
  return n;
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

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
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
