import type { Queryable } from '../../src/engine/db/pool.js';
import { queryRows } from '../../src/engine/db/pool.js';

/**
 * An independent model of a database's rows by global identity, for checking end states (issue 3:
 * "checked against an independent model of the expected rows, not only by comparing the nodes
 * with each other").
 *
 * It deliberately shares no code with the engine's identity layer: it reads foreign keys from
 * information_schema itself and writes its own SQL joins. A row is keyed by its `uuid` (or, for a
 * table without one, by the key columns the caller names, foreign keys among them translated the
 * same way); every foreign-key column holds the referenced row's key instead of a local id; local
 * surrogate ids (auto-increment columns) are left out. Values are compared as the server renders
 * them as text (bytes as hex).
 */

export type ModelRow = Record<string, string | null>;
/** key → row */
export type TableModel = Map<string, ModelRow>;
/** table → its rows */
export type Model = Map<string, TableModel>;

export interface ModelSpec {
  tables: string[];
  /**
   * Identity columns for tables without a uuid column (default: the primary key). Foreign-key
   * columns among them stand for the referenced row's identity.
   */
  keys?: Record<string, string[]>;
  /** Columns left out per table, beyond surrogate ids (e.g. timestamps the server sets itself). */
  ignore?: Record<string, string[]>;
}

interface ColumnInfo {
  name: string;
  dataType: string;
  autoIncrement: boolean;
}

interface TableInfo {
  name: string;
  columns: ColumnInfo[];
  primaryKey: string[];
  /** column → referenced table and column (single-column foreign keys) */
  fks: Map<string, { table: string; column: string }>;
}

const BINARY = /^(binary|varbinary|tinyblob|blob|mediumblob|longblob|bit)$/;
const MAX_DEPTH = 4;

/** Parts of a key made of several columns are joined with this; see modelKey(). */
export const KEY_SEPARATOR = ' | ';

/** The model's key for a row identified by several parts (each may itself be such a key). */
export function modelKey(...parts: string[]): string {
  return parts.join(KEY_SEPARATOR);
}

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

const qi = (name: string) => '`' + name.replace(/`/g, '``') + '`';

async function readInfo(db: Queryable): Promise<Map<string, TableInfo>> {
  const cols = await queryRows(
    db,
    `SELECT TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS d, EXTRA AS e, COLUMN_KEY AS k
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION`,
  );
  const pk = await queryRows(
    db,
    `SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.KEY_COLUMN_USAGE
      WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION`,
  );
  const fk = await queryRows(
    db,
    `SELECT TABLE_NAME AS t, CONSTRAINT_NAME AS n, COLUMN_NAME AS c,
            REFERENCED_TABLE_NAME AS rt, REFERENCED_COLUMN_NAME AS rc
       FROM information_schema.KEY_COLUMN_USAGE
      WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL`,
  );
  const info = new Map<string, TableInfo>();
  const get = (t: string) => {
    let x = info.get(t);
    if (!x) {
      x = { name: t, columns: [], primaryKey: [], fks: new Map() };
      info.set(t, x);
    }
    return x;
  };
  for (const r of cols) {
    get(String(r.t)).columns.push({
      name: String(r.c),
      dataType: String(r.d).toLowerCase(),
      autoIncrement: /auto_increment/i.test(String(r.e)),
    });
  }
  for (const r of pk) get(String(r.t)).primaryKey.push(String(r.c));
  const perConstraint = new Map<string, number>();
  for (const r of fk) {
    const k = `${String(r.t)}.${String(r.n)}`;
    perConstraint.set(k, (perConstraint.get(k) ?? 0) + 1);
  }
  for (const r of fk) {
    if (perConstraint.get(`${String(r.t)}.${String(r.n)}`) !== 1) continue; // composite: not used here
    get(String(r.t)).fks.set(String(r.c), { table: String(r.rt), column: String(r.rc) });
  }
  return info;
}

/** SQL that renders one column of `alias` as text. */
function textOf(alias: string, col: ColumnInfo): string {
  const ref = `${alias}.${qi(col.name)}`;
  return BINARY.test(col.dataType) ? `HEX(${ref})` : `CAST(${ref} AS CHAR)`;
}

class QueryBuilder {
  readonly joins: string[] = [];
  private n = 0;

  constructor(
    private readonly info: Map<string, TableInfo>,
    private readonly keys: Record<string, string[]>,
  ) {}

  /** The key columns of a table: uuid, else the caller's choice, else the primary key. */
  keyColumns(table: string): string[] {
    const t = this.info.get(table);
    if (!t) throw new Error(`model: no table ${table}`);
    if (t.columns.some((c) => c.name === 'uuid')) return ['uuid'];
    const k = this.keys[table] ?? t.primaryKey;
    if (!k.length) throw new Error(`model: ${table} has no uuid and no key; name one in spec.keys`);
    return k;
  }

  /** SQL for the identity of the row of `table` at `alias` (joins added as needed). */
  identity(table: string, alias: string, depth = 0): string {
    if (depth > MAX_DEPTH) throw new Error(`model: identities of ${table} nest too deep`);
    const t = this.info.get(table)!;
    const parts = this.keyColumns(table).map((c) => {
      const col = t.columns.find((x) => x.name === c);
      if (!col) throw new Error(`model: ${table} has no column ${c}`);
      return this.value(t, alias, col, depth);
    });
    return parts.length === 1
      ? parts[0]!
      : `CONCAT_WS(${sqlString(KEY_SEPARATOR)}, ${parts.map((x) => `COALESCE(${x}, 'NULL')`).join(', ')})`;
  }

  /** SQL for one column's value: a foreign key as the referenced row's identity. */
  value(t: TableInfo, alias: string, col: ColumnInfo, depth = 0): string {
    const fk = t.fks.get(col.name);
    if (!fk) return textOf(alias, col);
    const j = `j${++this.n}`;
    this.joins.push(
      `LEFT JOIN ${qi(fk.table)} ${j} ON ${j}.${qi(fk.column)} = ${alias}.${qi(col.name)}`,
    );
    const target = this.identity(fk.table, j, depth + 1);
    // A reference to a row that is not there shows as such, never as NULL.
    return `IF(${alias}.${qi(col.name)} IS NULL, NULL, COALESCE(${target}, CONCAT('?missing:', ${alias}.${qi(col.name)})))`;
  }
}

/** Columns a table contributes to the model: no surrogate ids, no ignored ones. */
function modelColumns(t: TableInfo, ignore: string[]): ColumnInfo[] {
  return t.columns.filter((c) => {
    if (ignore.includes(c.name)) return false;
    // A local surrogate id means nothing on another node; a key that is a reference is kept.
    if (c.autoIncrement && !t.fks.has(c.name)) return false;
    return true;
  });
}

export interface ReadModel {
  model: Model;
  /** keys that more than one row of a table has: "table key" */
  duplicates: string[];
}

/** Reads the tables of `spec` from `db` into a model keyed by global identity. */
export async function readModel(db: Queryable, spec: ModelSpec): Promise<ReadModel> {
  const info = await readInfo(db);
  const model: Model = new Map();
  const duplicates: string[] = [];
  for (const table of spec.tables) {
    const t = info.get(table);
    if (!t) throw new Error(`model: no table ${table}`);
    const qb = new QueryBuilder(info, spec.keys ?? {});
    const key = qb.identity(table, 't');
    const cols = modelColumns(t, spec.ignore?.[table] ?? []);
    const select = cols.map((c, i) => `${qb.value(t, 't', c)} AS c${i}`);
    const rows = await queryRows(
      db,
      `SELECT ${key} AS __key, ${select.join(', ')} FROM ${qi(table)} t ${qb.joins.join(' ')}`,
    );
    const tm: TableModel = new Map();
    for (const r of rows) {
      const k = String(r.__key);
      const row: ModelRow = {};
      cols.forEach((c, i) => {
        const v = r[`c${i}`] as unknown;
        row[c.name] = v === null || v === undefined ? null : String(v);
      });
      if (tm.has(k)) duplicates.push(`${table} ${k}`);
      tm.set(k, row);
    }
    model.set(table, tm);
  }
  return { model, duplicates };
}

export function cloneModel(m: Model): Model {
  return new Map([...m].map(([t, rows]) => [t, new Map([...rows].map(([k, r]) => [k, { ...r }]))]));
}

/**
 * What a test expects: a starting model plus the operations the test performed. Inserted rows may
 * name only the columns the test set; those are compared, and the rest of the row must still agree
 * between the nodes (see sameModels).
 */
export class ExpectedModel {
  readonly model: Model;

  constructor(start: Model) {
    this.model = cloneModel(start);
  }

  private table(t: string): TableModel {
    const tm = this.model.get(t);
    if (!tm) throw new Error(`expected model: table ${t} is not modelled`);
    return tm;
  }

  insert(table: string, key: string, row: ModelRow): this {
    const tm = this.table(table);
    if (tm.has(key)) throw new Error(`expected model: ${table} ${key} exists already`);
    tm.set(key, { ...row });
    return this;
  }

  update(table: string, key: string, values: ModelRow): this {
    const row = this.table(table).get(key);
    if (!row) throw new Error(`expected model: no ${table} ${key} to update`);
    Object.assign(row, values);
    return this;
  }

  delete(table: string, key: string): this {
    if (!this.table(table).delete(key))
      throw new Error(`expected model: no ${table} ${key} to delete`);
    return this;
  }

  get(table: string, key: string): ModelRow | undefined {
    return this.model.get(table)?.get(key);
  }
}

export interface ModelDiff {
  /** "table key" expected but absent */
  missing: string[];
  /** "table key" present but not expected */
  unexpected: string[];
  /** "table key column: expected ≠ actual" */
  wrong: string[];
}

/**
 * Differences between what a node holds and what was expected: every expected key present, no
 * other key, and every expected column value equal.
 */
export function diffModel(actual: Model, expected: Model): ModelDiff {
  const diff: ModelDiff = { missing: [], unexpected: [], wrong: [] };
  for (const [table, rows] of expected) {
    const got = actual.get(table) ?? new Map<string, ModelRow>();
    for (const [key, exp] of rows) {
      const row = got.get(key);
      if (!row) {
        diff.missing.push(`${table} ${key}`);
        continue;
      }
      for (const [col, v] of Object.entries(exp)) {
        if (!(col in row)) diff.wrong.push(`${table} ${key} ${col}: no such column in the model`);
        else if (row[col] !== v)
          diff.wrong.push(`${table} ${key} ${col}: expected ${show(v)}, got ${show(row[col]!)}`);
      }
    }
    for (const key of got.keys()) if (!rows.has(key)) diff.unexpected.push(`${table} ${key}`);
  }
  return diff;
}

/** Row-by-row, column-by-column differences between two nodes' models (all columns). */
export function diffNodes(a: Model, b: Model): string[] {
  const out: string[] = [];
  for (const [table, rowsA] of a) {
    const rowsB = b.get(table) ?? new Map<string, ModelRow>();
    for (const [key, ra] of rowsA) {
      const rb = rowsB.get(key);
      if (!rb) {
        out.push(`${table} ${key}: only on the first node`);
        continue;
      }
      for (const col of new Set([...Object.keys(ra), ...Object.keys(rb)])) {
        if (ra[col] !== rb[col])
          out.push(`${table} ${key} ${col}: ${show(ra[col] ?? null)} vs ${show(rb[col] ?? null)}`);
      }
    }
    for (const key of rowsB.keys())
      if (!rowsA.has(key)) out.push(`${table} ${key}: only on the second node`);
  }
  return out;
}

function show(v: string | null): string {
  return v === null ? 'NULL' : JSON.stringify(v);
}

export const NO_DIFF: ModelDiff = { missing: [], unexpected: [], wrong: [] };
