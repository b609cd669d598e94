import { createHash } from 'node:crypto';
import type { PoolConnection } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import type { Column, Table } from '../db/schema.js';
import { currentRows } from '../capture/pickup.js';
import { inColumnCollation, keySql, whereKey } from '../capture/rowSql.js';
import {
  CREATED,
  isLater,
  readStates,
  stampOf,
  writeStates,
  type Stamp,
} from '../capture/rowState.js';
import { fromDriver, type Value } from '../capture/values.js';
import type { TablePlan } from '../identity/plan.js';
import { recordConflict } from './conflicts.js';

/**
 * Two clinics give the same value of a unique key to two different rows (username `nurse1`;
 * DESIGN §6, issue 12 point 4). Before a received row's values are written, every unique key they
 * touch is looked up here: the row whose value is older, by (clock, origin), keeps it; the other
 * row's value gets a suffix made from that row's own identity, so every node renames the same row
 * to the same text whatever order the two rows reach it in. The case is recorded as a conflict
 * with what a data manager can do about it, and nothing waits: both rows are applied.
 *
 * The keys are the table's unique indexes other than its identity, plus those OpenMRS enforces in
 * its code but not in its schema: a username, a system id, an identifier of one identifier type.
 */

interface Key {
  columns: string[];
  /** the text column that takes the suffix */
  rename: Column;
  /** OpenMRS's own keys count only rows that are not voided */
  liveOnly: boolean;
  what: string;
}

/** Keys OpenMRS checks in its code: table -> [columns, the renamed column, what it is]. */
const OPENMRS_KEYS: Record<string, { columns: string[]; what: string }[]> = {
  users: [
    { columns: ['username'], what: 'username' },
    { columns: ['system_id'], what: 'system id' },
  ],
  patient_identifier: [
    { columns: ['identifier', 'identifier_type'], what: 'patient identifier of that type' },
  ],
};

const TEXT = new Set(['char', 'varchar']);

/** Keys of each plan, worked out once (every insert and update asks). */
const keysByPlan = new WeakMap<TablePlan, Key[]>();

function keysOf(plan: TablePlan): Key[] {
  let keys = keysByPlan.get(plan);
  if (!keys) keysByPlan.set(plan, (keys = findKeys(plan)));
  return keys;
}

function findKeys(plan: TablePlan): Key[] {
  const t = plan.table;
  const col = (name: string) => t.columns.find((c) => c.name === name);
  const out: Key[] = [];
  const seen = new Set<string>();
  const add = (columns: string[], what: string, liveOnly: boolean) => {
    const id = [...columns].sort().join(',');
    if (seen.has(id) || !columns.every((c) => col(c))) return;
    // the identity and the local key are not values two rows can share by accident
    if (
      id === [...t.primaryKey].sort().join(',') ||
      (columns.length === 1 && columns[0] === 'uuid')
    )
      return;
    const rename = columns.map(col).find((c) => c !== undefined && TEXT.has(c.dataType));
    if (!rename || plan.refs.has(rename.name)) return;
    seen.add(id);
    out.push({ columns, rename, liveOnly, what });
  };
  for (const k of OPENMRS_KEYS[t.name] ?? []) add(k.columns, k.what, col('voided') !== undefined);
  for (const k of t.uniqueKeys) add(k.columns, `value of ${k.columns.join(' and ')}`, false);
  return out;
}

/**
 * Of new rows about to go in together (local values, no row here yet), those that may collide on
 * a unique key: with a row here or with one another. They are written one at a time, each settled
 * by settleUniqueKeys; the others cannot collide and need no settling. The database compares,
 * with each column's own collation (`JOSÉ-1` is `jose-1` to utf8_general_ci), as settling does.
 */
export async function mayCollide(
  conn: PoolConnection,
  plan: TablePlan,
  rows: Record<string, Value>[],
): Promise<Set<number>> {
  const t = plan.table;
  const out = new Set<number>();
  for (const key of keysOf(plan)) {
    const keyed: { i: number; vals: Value[] }[] = [];
    rows.forEach((values, i) => {
      const full = keyValues(key, values, {});
      if (full) keyed.push({ i, vals: key.columns.map((c) => full[c]!) });
    });
    if (!keyed.length) continue;
    // The rows as a derived table: their index and key values (k0, k1, …).
    const rowsSql = (part: typeof keyed) =>
      part
        .map(() => `SELECT ? AS i, ${key.columns.map((_, j) => `? AS k${j}`).join(', ')}`)
        .join(' UNION ALL ');
    const rowsParams = (part: typeof keyed) => part.flatMap((k) => [k.i, ...k.vals]);
    for (let i = 0; i < keyed.length; i += 500) {
      const part = keyed.slice(i, i + 500);
      // In the column's own character set and collation: compared as settling would, by its index.
      const here = await queryRows(
        conn,
        `SELECT v.i FROM (${rowsSql(part)}) v WHERE EXISTS (SELECT 1 FROM ${q(t.name)} t WHERE ${key.columns.map((c, j) => `t.${q(c)} = ${asColumn(t, c, `v.k${j}`)}`).join(' AND ')})`,
        rowsParams(part),
      );
      for (const r of here) out.add(Number(r.i));
    }
    if (keyed.length > 1) {
      // Two values from the batch are compared as their column would compare them.
      const same = key.columns
        .map((c, j) => `${asColumn(t, c, `a.k${j}`)} = ${asColumn(t, c, `b.k${j}`)}`)
        .join(' AND ');
      const twice = await queryRows(
        conn,
        `SELECT DISTINCT a.i FROM (${rowsSql(keyed)}) a JOIN (${rowsSql(keyed)}) b ON a.i <> b.i AND ${same}`,
        [...rowsParams(keyed), ...rowsParams(keyed)],
      );
      for (const r of twice) out.add(Number(r.i));
    }
  }
  return out;
}

/** A value as column `name` of `t` would hold it, for comparing: in its character set and collation. */
function asColumn(t: Table, name: string, expr: string): string {
  const col = t.columns.find((c) => c.name === name);
  const converted = col ? inColumnCollation(col, expr) : null;
  return converted === null ? expr : `(${converted})`;
}

/** The value with a suffix from the row's identity, cut to fit its column. */
function renamedValue(value: string, ident: string, col: Column): string {
  const suffix = `-${createHash('sha256').update(ident).digest('hex').slice(0, 6)}`;
  const m = /\((\d+)\)/.exec(col.columnType);
  const max = m ? Number(m[1]) : Infinity;
  const chars = Array.from(value);
  return chars.slice(0, Math.max(0, max - suffix.length)).join('') + suffix;
}

export interface Incoming {
  ident: string;
  stamp: Stamp;
  /** the row's local key when it exists here already (an update), else null */
  lkey: string | null;
}

/**
 * Settles the unique keys that `values` (local values about to be written to `plan`'s table)
 * touch: renames the incoming value in `values` where it loses, or the row here where it wins.
 * Returns how many conflicts it recorded.
 */
export async function settleUniqueKeys(
  conn: PoolConnection,
  plan: TablePlan,
  values: Record<string, Value>,
  incoming: Incoming,
): Promise<number> {
  const t = plan.table;
  let conflicts = 0;
  for (const key of keysOf(plan)) {
    if (!key.columns.some((c) => Object.hasOwn(values, c))) continue;
    const full = await fullKey(conn, t, key, values, incoming.lkey);
    if (!full) continue;
    const conds = key.columns.map((c) => `${q(c)} = ?`);
    const params: unknown[] = key.columns.map((c) => full[c]);
    if (key.liveOnly) conds.push(`${q('voided')} = 0`);
    if (incoming.lkey !== null) {
      const self = whereKey(t, incoming.lkey);
      conds.push(`NOT (${self.sql})`);
      params.push(...self.params);
    }
    const hasUuid = t.columns.some((c) => c.name === 'uuid');
    const others = await queryRows(
      conn,
      `SELECT ${keySql(t)} AS k${hasUuid ? ', uuid' : ''} FROM ${q(t.name)} WHERE ${conds.join(' AND ')} LIMIT 10`,
      params,
    );
    for (const other of others) {
      const lkey = String(other.k);
      const state = (await readStates(conn, t.name, [lkey])).get(lkey);
      const ident = state?.ident ?? (other.uuid == null ? lkey : String(other.uuid));
      const held = heldSince(state?.clocks ?? {}, key.columns);
      const value = String(full[key.rename.name]);
      const incomingLoses = isLater(incoming.stamp, held);
      const loser = incomingLoses
        ? { ident: incoming.ident, stamp: incoming.stamp }
        : { ident, stamp: held };
      const winner = incomingLoses
        ? { ident, stamp: held }
        : { ident: incoming.ident, stamp: incoming.stamp };
      const renamed = renamedValue(value, loser.ident, key.rename);
      if (incomingLoses) {
        values[key.rename.name] = renamed;
      } else {
        await renameHere(conn, t, lkey, key.rename.name, renamed);
      }
      await recordConflict(conn, {
        table: t.name,
        ident: loser.ident,
        winner: { [key.rename.name]: value },
        loser: { [key.rename.name]: renamed },
        winnerStamp: winner.stamp,
        loserStamp: loser.stamp,
        explanation: explain(t.name, key, value, renamed, winner.ident, loser.ident),
      });
      conflicts++;
      if (incomingLoses) break; // renamed: it no longer collides with the rest
    }
  }
  return conflicts;
}

/**
 * The key's values the row will have: the incoming ones over what the row holds now (with whether
 * it is voided, for OpenMRS's own keys: an edit to a voided row claims no value).
 */
async function fullKey(
  conn: PoolConnection,
  t: Table,
  key: Key,
  values: Record<string, Value>,
  lkey: string | null,
): Promise<Record<string, Value> | null> {
  let current: Record<string, Value> = {};
  if (lkey !== null) {
    const row = (await currentRows(conn, t, [lkey])).get(lkey);
    const read = key.liveOnly ? [...key.columns, 'voided'] : key.columns;
    if (row) current = Object.fromEntries(read.map((c) => [c, fromDriver(row[c])]));
  }
  return keyValues(key, values, current);
}

/**
 * The key's values from the incoming values over the current ones; null when no other row can
 * share them (a value missing, empty or bytes; for OpenMRS's own keys, a voided row).
 */
function keyValues(
  key: Key,
  values: Record<string, Value>,
  current: Record<string, Value>,
): Record<string, Value> | null {
  if (key.liveOnly) {
    const voided = Object.hasOwn(values, 'voided') ? values.voided : current.voided;
    if (voided !== undefined && voided !== null && String(voided) !== '0') return null;
  }
  const full: Record<string, Value> = {};
  for (const c of key.columns) {
    const v = Object.hasOwn(values, c) ? values[c] : current[c];
    if (v === undefined || v === null || v === '' || Buffer.isBuffer(v)) return null;
    full[c] = v;
  }
  return full;
}

/** Since when the row here holds its key's value: the latest clock among the key's columns. */
function heldSince(clocks: Record<string, string>, columns: string[]): Stamp {
  let best = stampOf(clocks[CREATED]);
  for (const c of columns) {
    const s = stampOf(clocks[c]);
    if (isLater(s, best)) best = s;
  }
  return best;
}

/** Renames the value of a row here, and records it as its state so it is not sent as a change. */
async function renameHere(
  conn: PoolConnection,
  t: Table,
  lkey: string,
  column: string,
  value: string,
): Promise<void> {
  const w = whereKey(t, lkey);
  await execute(conn, `UPDATE ${q(t.name)} SET ${q(column)} = ? WHERE ${w.sql}`, [
    value,
    ...w.params,
  ]);
  const state = (await readStates(conn, t.name, [lkey])).get(lkey);
  const row = (await currentRows(conn, t, [lkey])).get(lkey);
  if (!state || !row) return;
  await writeStates(conn, {
    deletes: [],
    upserts: [{ ...state, tbl: t.name, hashes: Buffer.from(row.__h as Buffer) }],
  });
}

function explain(
  table: string,
  key: Key,
  value: string,
  renamed: string,
  winner: string,
  loser: string,
): string {
  const v = JSON.stringify(value);
  const options =
    table === 'users'
      ? 'tell the person who uses the renamed account its new name; or, if both accounts are the same person, retire one of them in OpenMRS; or give it another name in OpenMRS, which reaches every node'
      : table === 'patient_identifier'
        ? 'check whether both are the same patient and, if so, merge them in OpenMRS; otherwise give one of them a new identifier in OpenMRS, which reaches every node'
        : 'keep the new value, or change either row in OpenMRS, which reaches every node';
  return `Two nodes gave the ${key.what} ${v} to two different rows of ${table}. The one made first (${winner}) keeps it; the other (${loser}) now has ${JSON.stringify(renamed)} on every node. Nothing was held back. A data manager can ${options}.`;
}
