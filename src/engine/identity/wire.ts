import type { RowDataPacket } from '../db/pool.js';
import {
  fromDriver,
  fromStored,
  toStored,
  type StoredValue,
  type Value,
} from '../capture/values.js';
import type { Identities } from './identities.js';
import { queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import { FORMAT_TABLES, type TablePlan } from './plan.js';

/** The table a text reference points into, from its row's type; null for plain text. */
async function textTarget(ids: Identities, plan: TablePlan, typeId: Value): Promise<string | null> {
  const r = plan.textRef;
  if (!r || typeId === null) return null;
  const [row] = await queryRows(
    ids.db,
    `SELECT ${q(r.formatColumn)} AS f FROM ${q(r.typeTable)} WHERE ${q(ids.plan(r.typeTable)!.table.primaryKey[0]!)} = ?`,
    [typeId],
  );
  const target = row ? FORMAT_TABLES[String(row.f)] : undefined;
  return target && ids.plan(target) ? target : null;
}

/** Looks up, in one query per referenced table, the identities a set of rows refers to. */
export async function warmRefs(
  ids: Identities,
  plan: TablePlan,
  rows: RowDataPacket[],
): Promise<void> {
  for (const [col, table] of plan.refs) {
    const values = rows
      .map((r) => r[col] as unknown)
      .filter((v) => v != null)
      .map(String);
    if (values.length) await ids.globalIds(table, values);
  }
}

/**
 * A local row as it travels: the wire columns only (or those of `only`), each local id of another
 * row replaced by that row's identity.
 */
export async function toWire(
  ids: Identities,
  plan: TablePlan,
  row: RowDataPacket,
  only?: Set<string>,
): Promise<Record<string, StoredValue>> {
  const out: Record<string, StoredValue> = {};
  for (const col of plan.wireColumns) {
    if (only && !only.has(col)) continue;
    const v = fromDriver(row[col]);
    const ref = plan.refs.get(col);
    const textRef =
      plan.textRef?.column === col && v !== null
        ? await textTarget(ids, plan, fromDriver(row[plan.textRef.typeColumn]))
        : null;
    const target = ref ?? textRef;
    if (target && v !== null) {
      const local = String(v);
      // A reference to a row no pickup has seen cannot be resolved anywhere: it travels marked so
      // receivers park it instead of pointing it at a wrong row.
      out[col] = (await ids.globalIds(target, [local])).get(local) ?? `~unknown:${target}:${local}`;
    } else out[col] = toStored(v);
  }
  return out;
}

export interface LocalValues {
  values: Record<string, Value>;
  /** references to rows that are not here (yet), and the columns that hold them */
  missing: { table: string; ident: string; column: string }[];
}

/**
 * Incoming wire values as local values: identities of referenced rows become local ids. `current`
 * is the local row an update applies to (it tells a text reference's type when only the text
 * changed).
 */
export async function fromWire(
  ids: Identities,
  plan: TablePlan,
  wire: Record<string, StoredValue>,
  current?: RowDataPacket,
): Promise<LocalValues> {
  const values: Record<string, Value> = {};
  const missing: LocalValues['missing'] = [];
  const resolve = async (col: string, table: string, ident: string) => {
    const local = (await ids.localIds(table, [ident])).get(ident);
    if (local === undefined) missing.push({ table, ident, column: col });
    else values[col] = local;
  };
  for (const [col, stored] of Object.entries(wire)) {
    const ref = plan.refs.get(col);
    if (ref && typeof stored === 'string') await resolve(col, ref, stored);
    else values[col] = fromStored(stored);
  }
  const text = plan.textRef;
  if (text && typeof wire[text.column] === 'string') {
    const typeId =
      text.typeColumn in values
        ? values[text.typeColumn]!
        : current
          ? fromDriver(current[text.typeColumn])
          : null;
    const target = await textTarget(ids, plan, typeId);
    if (target) await resolve(text.column, target, wire[text.column] as string);
  }
  return { values, missing };
}
