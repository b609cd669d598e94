import type { Schema, Table } from '../db/schema.js';
import type { StoredValue } from '../capture/values.js';
import { dataColumns } from '../capture/rowSql.js';

/**
 * How a table's rows are known across nodes (DESIGN §4). Local auto-increment ids differ between
 * nodes and never identify a row by themselves.
 */
export type IdentityPlan =
  /** the row's `uuid` column */
  | { kind: 'uuid'; key: string[] }
  /**
   * the primary key's values, each key column that is a foreign key replaced by the referenced
   * row's identity (patient → its person; user_role → role + user; global_property → its name)
   */
  | { kind: 'natural'; key: string[]; parts: KeyPart[] }
  /** a surrogate key with no uuid (Sakila): "origin node:key at origin", kept in the row state */
  | { kind: 'registry'; key: string[] }
  /** no primary key: the whole row, foreign keys translated */
  | { kind: 'image'; key: [] };

export interface KeyPart {
  column: string;
  /** the table the column references, when it is a foreign key */
  ref: string | null;
}

/** A single-column foreign key whose value is a local id of the referenced table's primary key. */
export interface RefColumn {
  column: string;
  table: string;
}

/**
 * A text column that holds a local id of another table, chosen by the row's type (OpenMRS
 * person_attribute.value holds a location_id when its type's format is org.openmrs.Location).
 */
export interface TextRef {
  column: string;
  typeColumn: string;
  typeTable: string;
  formatColumn: string;
}

/** OpenMRS attribute formats whose values are local ids, and the tables they point into. */
export const FORMAT_TABLES: Record<string, string> = {
  'org.openmrs.Location': 'location',
  'org.openmrs.Concept': 'concept',
  'org.openmrs.Drug': 'drug',
  'org.openmrs.Provider': 'provider',
  'org.openmrs.User': 'users',
  'org.openmrs.Person': 'person',
  'org.openmrs.Patient': 'patient',
  'org.openmrs.Program': 'program',
  'org.openmrs.Encounter': 'encounter',
};

const TEXT_REFS: TextRef[] = [
  {
    column: 'value',
    typeColumn: 'person_attribute_type_id',
    typeTable: 'person_attribute_type',
    formatColumn: 'format',
  },
];

export interface TablePlan {
  table: Table;
  textRef: TextRef | null;
  identity: IdentityPlan;
  /** columns whose values are local ids of another table, translated to identities on the wire */
  refs: Map<string, string>;
  /** columns sent on the wire: local surrogate ids and key columns implied by the identity are not */
  wireColumns: string[];
}

function singleColumnRefs(schema: Schema, t: Table): Map<string, string> {
  const refs = new Map<string, string>();
  for (const fk of t.foreignKeys) {
    if (fk.columns.length !== 1) continue;
    const target = schema.tables.get(fk.refTable);
    // Only a reference to the target's own single-column primary key holds a local id.
    if (!target || target.primaryKey.length !== 1 || target.primaryKey[0] !== fk.refColumns[0])
      continue;
    refs.set(fk.columns[0]!, fk.refTable);
  }
  return refs;
}

export function planTable(schema: Schema, t: Table): TablePlan {
  const refs = singleColumnRefs(schema, t);
  const cols = dataColumns(t);
  const surrogate = (c: string) => cols.find((x) => x.name === c)?.autoIncrement === true;
  let identity: IdentityPlan;
  if (cols.some((c) => c.name === 'uuid')) identity = { kind: 'uuid', key: t.primaryKey };
  else if (!t.primaryKey.length) identity = { kind: 'image', key: [] };
  else if (t.primaryKey.some((c) => surrogate(c) && !refs.has(c)))
    identity = { kind: 'registry', key: t.primaryKey };
  else {
    identity = {
      kind: 'natural',
      key: t.primaryKey,
      parts: t.primaryKey.map((c) => ({ column: c, ref: refs.get(c) ?? null })),
    };
  }
  // A key column that is a local surrogate or a reference is implied by the identity.
  const implied = new Set(t.primaryKey.filter((c) => surrogate(c) || refs.has(c)));
  if (identity.kind === 'image') implied.clear();
  const has = (table: string | undefined, col: string) =>
    !!table && !!schema.tables.get(table)?.columns.some((c) => c.name === col);
  const textRef =
    TEXT_REFS.find(
      (r) =>
        has(t.name, r.column) &&
        refs.get(r.typeColumn) === r.typeTable &&
        has(r.typeTable, r.formatColumn),
    ) ?? null;
  return {
    table: t,
    textRef,
    identity,
    refs: identity.kind === 'image' ? refs : new Map([...refs].filter(([c]) => !implied.has(c))),
    wireColumns: cols.map((c) => c.name).filter((c) => !implied.has(c)),
  };
}

export function planSchema(schema: Schema): Map<string, TablePlan> {
  const out = new Map<string, TablePlan>();
  for (const t of schema.tables.values()) out.set(t.name, planTable(schema, t));
  return out;
}

/** Identities of several parts, written as one string (a single part stands as itself). */
export function joinParts(parts: string[]): string {
  return parts.length === 1 ? parts[0]! : JSON.stringify(parts);
}

export function splitParts(ident: string, count: number): string[] | null {
  if (count === 1) return [ident];
  try {
    const parts = JSON.parse(ident) as unknown;
    if (Array.isArray(parts) && parts.length === count && parts.every((p) => typeof p === 'string'))
      return parts;
  } catch {
    // not an identity of this table
  }
  return null;
}

/** The identity of a row of a keyless table: its whole image in wire form, columns in order. */
export function imageIdent(plan: TablePlan, wire: Record<string, StoredValue>): string {
  return JSON.stringify(plan.wireColumns.map((c) => wire[c] ?? null));
}
