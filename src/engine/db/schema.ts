import { createHash } from 'node:crypto';
import type { Queryable, RowDataPacket } from './pool.js';
import { queryRows } from './pool.js';

/** ClinicSync's own tables, triggers and locks carry this prefix and are never synced. */
export const OWN_PREFIX = 'clinicsync_';

export interface Column {
  name: string;
  /** e.g. `int`, `varchar`, `datetime` (lower case) */
  dataType: string;
  /** the full type as the server prints it, e.g. `int(11) unsigned`, `enum('G','PG')` */
  columnType: string;
  nullable: boolean;
  default: string | null;
  autoIncrement: boolean;
  /** generated (virtual/stored) columns cannot be written */
  generated: boolean;
  charset: string | null;
  collation: string | null;
  /** bytes, not text: binary, varbinary, blobs, bit, geometry */
  binary: boolean;
}

export type FkRule = 'CASCADE' | 'SET NULL' | 'RESTRICT' | 'NO ACTION' | 'SET DEFAULT';

export interface ForeignKey {
  name: string;
  columns: string[];
  refTable: string;
  refColumns: string[];
  onDelete: FkRule;
  onUpdate: FkRule;
}

export interface UniqueKey {
  name: string;
  columns: string[];
}

export interface Table {
  name: string;
  columns: Column[];
  primaryKey: string[];
  uniqueKeys: UniqueKey[];
  foreignKeys: ForeignKey[];
  autoIncrement: number | null;
  engine: string | null;
  collation: string | null;
  /** changes when a column is added, dropped, renamed or retyped; not when columns move */
  fingerprint: string;
}

export interface View {
  name: string;
  definition: string;
}

export interface Trigger {
  name: string;
  table: string;
  timing: string;
  event: string;
  /** tables its body writes to */
  writes: string[];
}

export interface Routine {
  name: string;
  type: 'PROCEDURE' | 'FUNCTION';
}

export interface Schema {
  database: string;
  tables: Map<string, Table>;
  views: View[];
  /** the application's own triggers (ClinicSync's are left out) */
  triggers: Trigger[];
  routines: Routine[];
}

const BINARY_TYPES = new Set([
  'binary',
  'varbinary',
  'tinyblob',
  'blob',
  'mediumblob',
  'longblob',
  'bit',
  'geometry',
  'point',
  'linestring',
  'polygon',
  'multipoint',
  'multilinestring',
  'multipolygon',
  'geometrycollection',
]);

/**
 * MySQL 8 drops integer display widths (`int`) that MariaDB and MySQL 5.x still print
 * (`int(11)`); they mean nothing for the values, so they are left out of the fingerprint.
 */
function canonicalType(columnType: string): string {
  return columnType
    .toLowerCase()
    .replace(/^(tinyint|smallint|mediumint|int|integer|bigint|year)\(\d+\)/, '$1');
}

export function fingerprintColumns(columns: Pick<Column, 'name' | 'columnType'>[]): string {
  const lines = columns.map((c) => `${c.name.toLowerCase()} ${canonicalType(c.columnType)}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('base64url').slice(0, 16);
}

interface ColumnRow extends RowDataPacket {
  TABLE_NAME: string;
  COLUMN_NAME: string;
  DATA_TYPE: string;
  COLUMN_TYPE: string;
  IS_NULLABLE: string;
  COLUMN_DEFAULT: string | null;
  EXTRA: string;
  CHARACTER_SET_NAME: string | null;
  COLLATION_NAME: string | null;
  GEN: string | null;
}

/**
 * Reads the whole shape of one database from information_schema. Names are compared exactly as
 * the server stores them; ClinicSync's own tables and triggers are left out.
 */
export async function introspect(db: Queryable, database: string): Promise<Schema> {
  const tableRows = await queryRows(
    db,
    `SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION, AUTO_INCREMENT
       FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`,
    [database],
  );
  // GENERATION_EXPRESSION exists on MySQL 5.7+/MariaDB 10.2+; EXTRA tells generated columns everywhere.
  const columnRows = await queryRows<ColumnRow>(
    db,
    `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA,
            CHARACTER_SET_NAME, COLLATION_NAME, NULL AS GEN
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [database],
  );
  const keyRows = await queryRows(
    db,
    `SELECT s.TABLE_NAME, s.INDEX_NAME, s.COLUMN_NAME, s.NON_UNIQUE, s.SEQ_IN_INDEX
       FROM information_schema.STATISTICS s
      WHERE s.TABLE_SCHEMA = ? ORDER BY s.TABLE_NAME, s.INDEX_NAME, s.SEQ_IN_INDEX`,
    [database],
  );
  const fkRows = await queryRows(
    db,
    `SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME,
            k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE
       FROM information_schema.KEY_COLUMN_USAGE k
       JOIN information_schema.REFERENTIAL_CONSTRAINTS r
         ON r.CONSTRAINT_SCHEMA = k.TABLE_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
        AND r.TABLE_NAME = k.TABLE_NAME
      WHERE k.TABLE_SCHEMA = ? AND r.CONSTRAINT_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL
      ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`,
    [database, database],
  );
  const viewRows = await queryRows(
    db,
    `SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`,
    [database],
  );
  const triggerRows = await queryRows(
    db,
    `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT
       FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? ORDER BY TRIGGER_NAME`,
    [database],
  );
  const routineRows = await queryRows(
    db,
    `SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME`,
    [database],
  );

  const tables = new Map<string, Table>();
  for (const r of tableRows) {
    const name = String(r.TABLE_NAME);
    if (r.TABLE_TYPE !== 'BASE TABLE' || isOwnName(name)) continue;
    tables.set(name, {
      name,
      columns: [],
      primaryKey: [],
      uniqueKeys: [],
      foreignKeys: [],
      autoIncrement: r.AUTO_INCREMENT == null ? null : Number(r.AUTO_INCREMENT),
      engine: r.ENGINE == null ? null : String(r.ENGINE),
      collation: r.TABLE_COLLATION == null ? null : String(r.TABLE_COLLATION),
      fingerprint: '',
    });
  }
  for (const c of columnRows) {
    const t = tables.get(c.TABLE_NAME);
    if (!t) continue;
    const extra = String(c.EXTRA ?? '').toLowerCase();
    const dataType = String(c.DATA_TYPE).toLowerCase();
    t.columns.push({
      name: c.COLUMN_NAME,
      dataType,
      columnType: String(c.COLUMN_TYPE),
      nullable: c.IS_NULLABLE === 'YES',
      default: c.COLUMN_DEFAULT,
      autoIncrement: extra.includes('auto_increment'),
      generated: /\b(virtual|stored|persistent) generated\b|\bvirtual\b|\bpersistent\b/.test(extra),
      charset: c.CHARACTER_SET_NAME,
      collation: c.COLLATION_NAME,
      binary:
        BINARY_TYPES.has(dataType) || (c.CHARACTER_SET_NAME === null && dataType.endsWith('blob')),
    });
  }
  const indexes = new Map<
    string,
    { table: string; name: string; unique: boolean; columns: string[] }
  >();
  for (const k of keyRows) {
    const id = `${k.TABLE_NAME}\u0000${k.INDEX_NAME}`;
    let ix = indexes.get(id);
    if (!ix) {
      ix = {
        table: String(k.TABLE_NAME),
        name: String(k.INDEX_NAME),
        unique: Number(k.NON_UNIQUE) === 0,
        columns: [],
      };
      indexes.set(id, ix);
    }
    ix.columns.push(String(k.COLUMN_NAME));
  }
  for (const ix of indexes.values()) {
    const t = tables.get(ix.table);
    if (!t || !ix.unique) continue;
    if (ix.name === 'PRIMARY') t.primaryKey = ix.columns;
    else t.uniqueKeys.push({ name: ix.name, columns: ix.columns });
  }
  const fks = new Map<string, ForeignKey & { table: string }>();
  for (const f of fkRows) {
    const id = `${f.TABLE_NAME}\u0000${f.CONSTRAINT_NAME}`;
    let fk = fks.get(id);
    if (!fk) {
      fk = {
        table: String(f.TABLE_NAME),
        name: String(f.CONSTRAINT_NAME),
        columns: [],
        refTable: String(f.REFERENCED_TABLE_NAME),
        refColumns: [],
        onDelete: String(f.DELETE_RULE) as FkRule,
        onUpdate: String(f.UPDATE_RULE) as FkRule,
      };
      fks.set(id, fk);
    }
    fk.columns.push(String(f.COLUMN_NAME));
    fk.refColumns.push(String(f.REFERENCED_COLUMN_NAME));
  }
  for (const { table, ...fk } of fks.values()) tables.get(table)?.foreignKeys.push(fk);
  for (const t of tables.values()) t.fingerprint = fingerprintColumns(t.columns);

  return {
    database,
    tables,
    views: viewRows.map((v) => ({
      name: String(v.TABLE_NAME),
      definition: String(v.VIEW_DEFINITION),
    })),
    triggers: triggerRows
      .filter((t) => !isOwnName(String(t.TRIGGER_NAME)))
      .map((t) => ({
        name: String(t.TRIGGER_NAME),
        table: String(t.EVENT_OBJECT_TABLE),
        timing: String(t.ACTION_TIMING),
        event: String(t.EVENT_MANIPULATION),
        writes: tablesWrittenBy(String(t.ACTION_STATEMENT)),
      })),
    routines: routineRows
      .filter((r) => !isOwnName(String(r.ROUTINE_NAME)))
      .map((r) => ({ name: String(r.ROUTINE_NAME), type: r.ROUTINE_TYPE as Routine['type'] })),
  };
}

const WRITE =
  /\b(?:INSERT\s+(?:IGNORE\s+)?INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:`?\w+`?\.)?`?(\w+)`?/gi;

/** Tables a trigger body writes to, read from its SQL text. */
export function tablesWrittenBy(statement: string): string[] {
  return [...new Set([...statement.matchAll(WRITE)].map((m) => m[1]!))];
}

export function isOwnName(name: string): boolean {
  return name.toLowerCase().startsWith(OWN_PREFIX);
}

/** Tables that reference `table` through a foreign key, with the key. */
export function referencingKeys(schema: Schema, table: string): { table: Table; fk: ForeignKey }[] {
  const out: { table: Table; fk: ForeignKey }[] = [];
  for (const t of schema.tables.values()) {
    for (const fk of t.foreignKeys) if (fk.refTable === table) out.push({ table: t, fk });
  }
  return out;
}

/** The tables of a schema already read (a Map or Set of their names). */
export interface KnownTables {
  has(name: string): boolean;
}

/**
 * Whether the current database has every one of these tables: from `known` where the caller has
 * just read the schema, else from information_schema.
 */
export async function hasTables(
  db: Queryable,
  names: string[],
  known?: KnownTables,
): Promise<boolean> {
  if (known) return names.every((n) => known.has(n));
  const rows = await queryRows(
    db,
    `SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (${names.map(() => '?').join(', ')})`,
    names,
  );
  return Number(rows[0]!.n) === names.length;
}

/** Whether a table of the current database has every one of these columns. */
export async function hasColumns(
  db: Queryable,
  table: string,
  columns: string[],
): Promise<boolean> {
  const rows = await queryRows(
    db,
    'SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
    [table],
  );
  const have = new Set(rows.map((r) => String(r.c)));
  return columns.every((c) => have.has(c));
}
