import type { RowDataPacket } from '../db/pool.js';
import {
  fromDriver,
  fromStored,
  toStored,
  type StoredValue,
  type Value,
} from '../capture/values.js';
import type { Identities } from './identities.js';
import type { TablePlan } from './plan.js';

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
    if (ref && v !== null) {
      const local = String(v);
      // A reference to a row no pickup has seen cannot be resolved anywhere: it travels marked so
      // receivers park it instead of pointing it at a wrong row.
      out[col] = (await ids.globalIds(ref, [local])).get(local) ?? `~unknown:${ref}:${local}`;
    } else out[col] = toStored(v);
  }
  return out;
}

export interface LocalValues {
  values: Record<string, Value>;
  /** references to rows that are not here (yet) */
  missing: { table: string; ident: string }[];
}

/** Incoming wire values as local values: identities of referenced rows become local ids. */
export async function fromWire(
  ids: Identities,
  plan: TablePlan,
  wire: Record<string, StoredValue>,
): Promise<LocalValues> {
  const values: Record<string, Value> = {};
  const missing: LocalValues['missing'] = [];
  for (const [col, stored] of Object.entries(wire)) {
    const ref = plan.refs.get(col);
    if (ref && typeof stored === 'string') {
      const local = (await ids.localIds(ref, [stored])).get(stored);
      if (local === undefined) missing.push({ table: ref, ident: stored });
      else values[col] = local;
    } else values[col] = fromStored(stored);
  }
  return { values, missing };
}
